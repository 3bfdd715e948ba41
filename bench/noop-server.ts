/**
 * The HTTP ceiling: a fastify route that parses the same V2 JSON request and
 * answers a V2-shaped response of the same size, doing no inference.
 *   node bench/noop-server.ts --port <port>
 */
import Fastify from 'fastify';

const app = Fastify({ bodyLimit: 64 * 1024 * 1024 });
const answer = '{"model_name":"iris-v2","outputs":[{"name":"probabilities","datatype":"FP32","shape":[1,3],"data":[6.118962558865348e-10,0.001894011627882719,0.9981060028076172]},{"name":"label","datatype":"INT64","shape":[1],"data":[2]}]}';
app.post('/v2/models/:key/infer', async (request, reply) => {
  const body = request.body as { inputs?: unknown[] };
  if (!Array.isArray(body.inputs)) return reply.code(400).send({ error: 'inputs' });
  return reply.type('application/json; charset=utf-8').send(answer);
});
const at = process.argv.indexOf('--port');
await app.listen({ host: '127.0.0.1', port: at === -1 ? 8090 : Number(process.argv[at + 1]) });
