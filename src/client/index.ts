/**
 * `modelgate/client`, kept for applications that import the client from the
 * server's package: it is the workspace package `@modelgate/client`
 * (packages/client), which installs on its own without the server.
 */
export * from '@modelgate/client';
