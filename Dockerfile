# modelgate on Node 24 LTS. Build: docker build -t modelgate .
# Run:   docker run -p 8080:8080 -e MODELGATE_ADMIN_TOKEN=... \
#          -v $PWD/config:/app/config:ro -v $PWD/models:/app/models:ro modelgate

FROM node:24-slim AS build
WORKDIR /app
# .npmrc skips onnxruntime-node's GPU download; the CPU binaries ship in the package.
# The client is an npm workspace (packages/client): npm ci needs its package.json.
COPY package.json package-lock.json .npmrc ./
COPY packages/client/package.json ./packages/client/
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY packages/client/tsconfig.json ./packages/client/
COPY packages/client/src ./packages/client/src
COPY packages/client/proto ./packages/client/proto
COPY src ./src
COPY console ./console
# Compiles the client package and the server to dist/ (the console's assets into dist/console) and builds the demo models,
# so the image serves the demo without mounts.
RUN npm run build && node dist/demo/build-models.js models

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY packages/client/package.json ./packages/client/
RUN npm ci --omit=dev

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# node_modules/@modelgate/client links here: the codec the server imports.
COPY --from=build /app/packages/client/package.json ./packages/client/
COPY --from=build /app/packages/client/dist ./packages/client/dist
# The gRPC service's definition, read at start-up by the server (and the client).
COPY --from=build /app/packages/client/proto ./packages/client/proto
COPY --from=build --chown=node:node /app/models ./models
COPY package.json ./
# Owned by node: live route changes are saved beside the config (config/gateway.state.json).
COPY --chown=node:node config ./config
VOLUME ["/app/config", "/app/models"]
USER node
EXPOSE 8080 8001
# The demo config listens on 127.0.0.1; in a container, listen on every interface.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD node -e "fetch('http://127.0.0.1:8080/v2/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/cli.js", "serve"]
CMD ["--config", "config/gateway.yaml", "--host", "0.0.0.0"]
