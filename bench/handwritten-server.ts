/**
 * The honest alternative to modelgate: the twenty lines a small team would write themselves.
 * A fastify route that lets fastify parse the V2 JSON body, copies each input's data into a
 * typed array, runs the session once per request (one intra-op thread, in the event loop)
 * and answers the outputs as arrays. No batching, metrics, registry or access log.
 *   node bench/handwritten-server.ts --model <file.onnx> --port <port>
 */
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';

const argument = (name: string) => process.argv[process.argv.indexOf(name) + 1] as string;
const session = await ort.InferenceSession.create(argument('--model'), { intraOpNumThreads: 1, interOpNumThreads: 1 });
const app = Fastify({ bodyLimit: 64 * 1024 * 1024 });

interface V2Input { name: string; shape: number[]; datatype: string; data: number[] }

app.post<{ Params: { key: string }; Body: { inputs: V2Input[] } }>('/v2/models/:key/infer', async (request, reply) => {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of request.body.inputs) feeds[input.name] = new ort.Tensor('float32', Float32Array.from(input.data), input.shape);
  const results = await session.run(feeds);
  const outputs = Object.entries(results).map(([name, tensor]) => ({
    name,
    datatype: tensor.type === 'int64' ? 'INT64' : 'FP32',
    shape: tensor.dims,
    data: Array.from(tensor.data as ArrayLike<number | bigint>, Number),
  }));
  return reply.send({ model_name: request.params.key, outputs });
});
await app.listen({ host: '127.0.0.1', port: Number(argument('--port')) });
