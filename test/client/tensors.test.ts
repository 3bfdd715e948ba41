/**
 * The client's codec without a server: what it refuses to send, and answers
 * it cannot read.
 */
import t from 'tap';
import { decodeResponse, encodeRequest } from '../../packages/client/src/tensors.ts';

t.test('inputs the client refuses before sending', async (t) => {
  t.throws(() => encodeRequest([{ name: 'x', datatype: 'BYTES', shape: [1], data: [new Uint8Array([1])] }], { binary: false }), /BYTES given as Uint8Array need the binary form/);
  t.throws(() => encodeRequest([{ name: 'x', datatype: 'NOPE' as 'FP32', shape: [1], data: [1] }], { binary: true }), /'NOPE' is not a V2 datatype/);
  t.throws(() => encodeRequest([{ name: 'x', datatype: 'INT8', shape: [1], data: [300] }], { binary: true }), /element 0: 300 is out of range for INT8/);
  const bools = encodeRequest([{ name: 'x', datatype: 'BOOL', shape: [2], data: [1, 0] }], { binary: false, id: 'q', parameters: { p: 1 } });
  t.equal(bools.body.toString(), '{"id":"q","inputs":[{"name":"x","shape":[2],"datatype":"BOOL","data":[true,false]}],"parameters":{"p":1}}');
});

t.test('answers that are not V2 responses are refused, naming what is wrong', async (t) => {
  t.throws(() => decodeResponse(Buffer.from('{"outputs":[]}'), undefined), /not a V2 inference response/);
  t.throws(() => decodeResponse(Buffer.from('[]'), undefined), /not a V2 inference response/);
  t.throws(() => decodeResponse(Buffer.from('{}'), 99), /beyond the body/);
  t.throws(() => decodeResponse(Buffer.from('{"model_name":"m","outputs":[{"name":"y","datatype":"ZZ","shape":[1],"data":[1]}]}'), undefined), /output 'y': not a V2 tensor/);
  t.throws(() => decodeResponse(Buffer.from('{"model_name":"m","outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[1]}]}'), undefined), /output 'y': 1 elements for shape \[2\]/);
  t.throws(() => decodeResponse(Buffer.from('{"model_name":"m","outputs":[{"name":"y","datatype":"INT32","shape":[1],"data":["x"]}]}'), undefined), /output 'y': element 0: "x" is not an integer/);
  const nested = decodeResponse(Buffer.from('{"model_name":"m","model_version":"3","id":"i","parameters":{"a":1},"outputs":[{"name":"y","datatype":"INT64","shape":[2,1],"data":[[9007199254740993],[1]]}]}'), undefined);
  t.same(nested, { modelName: 'm', modelVersion: '3', id: 'i', parameters: { a: 1 }, outputs: [{ name: 'y', datatype: 'INT64', shape: [2, 1], data: new BigInt64Array([9007199254740993n, 1n]) }] });
});
