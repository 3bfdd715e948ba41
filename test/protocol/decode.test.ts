import t, { type Test } from 'tap';
import type { Datatype, Signature } from '@modelgate/client/codec';
import { decodeInferRequest } from '../../src/protocol/decode.ts';

const signature: Signature = {
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [-1, 3] },
    { name: 'n', datatype: 'INT8', shape: [2] },
  ],
  outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 3] }, { name: 'z', datatype: 'INT64', shape: [] }],
};

const x = { name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] };
const n = { name: 'n', shape: [2], datatype: 'INT8', data: [1, -1] };

function rejects(t: Test, body: unknown, message: RegExp, sig: Signature = signature): void {
  t.throws(() => decodeInferRequest(body, sig), { code: 'MG_INVALID_INPUT', statusCode: 400, message }, String(message));
}

function single(datatype: Datatype, shape: number[] = [-1]): Signature {
  return { inputs: [{ name: 'v', datatype, shape }], outputs: [{ name: 'v', datatype, shape }] };
}

function one(datatype: string, data: unknown, shape: unknown = [Array.isArray(data) ? data.length : 1]) {
  return { inputs: [{ name: 'v', shape, datatype, data }] };
}

t.test('decodes flat and nested data into typed arrays', async (t) => {
  const flat = decodeInferRequest({ id: 'r1', inputs: [{ ...x, shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }, n] }, signature);
  const nested = decodeInferRequest({ inputs: [n, { ...x, shape: [2, 3], data: [[1, 2, 3], [4, 5, 6]] }] }, signature);
  t.equal(flat.id, 'r1');
  t.same([...(flat.inputs.get('x')?.data as Float32Array)], [1, 2, 3, 4, 5, 6]);
  t.same(nested.inputs.get('x'), flat.inputs.get('x'));
  t.ok(flat.inputs.get('n')?.data instanceof Int8Array);
  t.equal(flat.outputs, undefined);
  const chosen = decodeInferRequest({ inputs: [x, n], outputs: [{ name: 'z' }] }, signature);
  t.same(chosen.outputs, ['z']);
});

t.test('every datatype converts its JSON elements exactly', async (t) => {
  const cases: Array<[Datatype, unknown[], unknown[]]> = [
    ['BOOL', [true, false], [1, 0]],
    ['UINT8', [0, 255], [0, 255]],
    ['UINT16', [0, 65535], [0, 65535]],
    ['UINT32', [0, 4294967295], [0, 4294967295]],
    ['UINT64', [0, '18446744073709551615'], [0n, 18446744073709551615n]],
    ['INT8', [-128, 127], [-128, 127]],
    ['INT16', [-32768, 32767], [-32768, 32767]],
    ['INT32', [-2147483648, 2147483647], [-2147483648, 2147483647]],
    ['INT64', ['-9223372036854775808', 9007199254740991], [-9223372036854775808n, 9007199254740991n]],
    ['FP16', [1, -2.5, 65504], [0x3c00, 0xc100, 0x7bff]],
    ['FP32', [0.5, 'NaN', '-Infinity'], [0.5, Number.NaN, -Infinity]],
    ['FP64', [0.1, 1e300], [0.1, 1e300]],
    ['BYTES', ['a', ''], ['a', '']],
  ];
  for (const [datatype, data, expected] of cases) {
    const tensor = decodeInferRequest(one(datatype, data), single(datatype)).inputs.get('v');
    t.same(Array.from(tensor?.data as ArrayLike<unknown>), expected, datatype);
  }
});

t.test('rank-0 tensors take a bare value or a one-element array', async (t) => {
  const sig = single('INT32', []);
  t.same([...(decodeInferRequest(one('INT32', 7, []), sig).inputs.get('v')?.data as Int32Array)], [7]);
  t.same([...(decodeInferRequest(one('INT32', [7], []), sig).inputs.get('v')?.data as Int32Array)], [7]);
  rejects(t, one('INT32', [7, 8], []), /input 'v': data has 2 elements but shape \[\] needs 1/, sig);
  rejects(t, one('INT32', [], []), /needs 1/, sig);
});

t.test('the request envelope', async (t) => {
  rejects(t, null, /request body must be a JSON object/);
  rejects(t, [1], /request body must be a JSON object/);
  rejects(t, 'text', /request body must be a JSON object/);
  rejects(t, {}, /'inputs' must be an array/);
  rejects(t, { inputs: {} }, /'inputs' must be an array/);
  rejects(t, { inputs: [x, n], input: [] }, /request: unknown field 'input'/);
  rejects(t, { id: 5, inputs: [x, n] }, /'id' must be a string/);
  rejects(t, { parameters: [], inputs: [x, n] }, /'parameters' must be an object/);
  rejects(t, { inputs: [5] }, /inputs\[0\] must be an object/);
  rejects(t, { inputs: [{ shape: [1], datatype: 'FP32', data: [1] }] }, /inputs\[0\]: 'name' must be a string/);
  rejects(t, { inputs: [{ ...x, extra: 1 }, n] }, /input 'x': unknown field 'extra'/);
  rejects(t, { inputs: [{ ...x, parameters: 3 }, n] }, /input 'x': 'parameters' must be an object/);
});

t.test('input names', async (t) => {
  rejects(t, { inputs: [x, n, { ...x, name: 'w' }] }, /input 'w' is not an input of this model \(inputs: x, n\)/);
  rejects(t, { inputs: [x, x, n] }, /input 'x' appears more than once/);
  rejects(t, { inputs: [x] }, /missing input 'n'/);
  rejects(t, { inputs: [] }, /missing inputs 'x', 'n'/);
});

t.test('requested outputs', async (t) => {
  rejects(t, { inputs: [x, n], outputs: {} }, /'outputs' must be an array/);
  rejects(t, { inputs: [x, n], outputs: [{ name: 'q' }] }, /requested output 'q' is not an output of this model \(outputs: y, z\)/);
  rejects(t, { inputs: [x, n], outputs: [{ name: 'y' }, { name: 'y' }] }, /requested output 'y' appears more than once/);
  rejects(t, { inputs: [x, n], outputs: [{}] }, /outputs\[0\]: 'name' must be a string/);
  rejects(t, { inputs: [x, n], outputs: [{ name: 'y', binary: true }] }, /requested output 'y': unknown field 'binary'/);
});

t.test('datatypes and shapes', async (t) => {
  rejects(t, { inputs: [{ ...x, datatype: 'FP64' }, n] }, /input 'x': datatype FP64 does not match the model's FP32/);
  rejects(t, { inputs: [{ ...x, datatype: 'FLOAT' }, n] }, /input 'x': 'datatype' must be one of the V2 datatypes, got "FLOAT"/);
  rejects(t, { inputs: [{ ...x, datatype: undefined }, n] }, /input 'x': 'datatype' must be one of/);
  rejects(t, { inputs: [{ ...x, shape: [1, 4], data: [1, 2, 3, 4] }, n] }, /input 'x': shape \[1,4\] does not match the model's \[-1,3\]/);
  rejects(t, { inputs: [{ ...x, shape: [3], data: [1, 2, 3] }, n] }, /input 'x': shape \[3\] does not match/);
  rejects(t, { inputs: [{ ...x, shape: '1,3' }, n] }, /input 'x': 'shape' must be an array/);
  rejects(t, { inputs: [{ ...x, shape: [-1, 3] }, n] }, /input 'x': shape \[-1,3\] must hold non-negative integers/);
  rejects(t, { inputs: [{ ...x, shape: [0.5, 3] }, n] }, /non-negative integers/);
  rejects(t, { inputs: [{ ...x, shape: ['1', 3] }, n] }, /non-negative integers/);
  rejects(t, { inputs: [{ ...x, shape: [1e300, 3] }, n] }, /input 'x': shape \[1e\+300,3\] has more than 2147483647 elements/);
  // 2^31 * 2^31 would overflow a 32-bit product and wrap to something small.
  rejects(t, { inputs: [{ ...x, shape: [2147483648, 2147483648, 3] }, n] }, /has more than/);
});

t.test('data against the shape', async (t) => {
  rejects(t, { inputs: [{ ...x, data: undefined }, n] }, /input 'x': 'data' is missing/);
  rejects(t, { inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32' }, n] }, /input 'x': 'data' is missing/);
  rejects(t, { inputs: [{ ...x, data: 3 }, n] }, /input 'x': 'data' must be an array/);
  rejects(t, { inputs: [{ ...x, data: [1, 2] }, n] }, /input 'x': data has 2 elements but shape \[1,3\] needs 3/);
  rejects(t, { inputs: [{ ...x, shape: [2, 3], data: [[1, 2, 3], [4, 5]] }, n] }, /input 'x': data\[1\] must be an array of 3 along axis 1 \(ragged/);
  rejects(t, { inputs: [{ ...x, shape: [2, 3], data: [[1, 2, 3]] }, n] }, /data must be an array of 2 along axis 0/);
  rejects(t, { inputs: [{ ...x, data: [[[1], [2], [3]]] }, n] }, /input 'x': data\[0\]\[0\] is nested deeper than shape \[1,3\]/);
  rejects(t, { inputs: [x, { ...n, data: [[1], [2]] }] }, /input 'n': data\[0\] is nested deeper than shape \[2\]/);
  rejects(t, { inputs: [{ ...x, data: [1, [2], 3] }, n] }, /input 'x': element 1: \[2\] is not a number/);
});

t.test('element values', async (t) => {
  rejects(t, one('FP32', ['1.5']), /input 'v': element 0: "1.5" is not a number/, single('FP32'));
  rejects(t, one('FP32', [null]), /element 0: null is not a number/, single('FP32'));
  rejects(t, one('FP32', [1e39]), /element 0: 1e\+39 is out of range for FP32/, single('FP32'));
  rejects(t, one('FP16', [70000]), /out of range for FP16/, single('FP16'));
  rejects(t, one('INT8', [128]), /input 'v': element 0: 128 is out of range for INT8/, single('INT8'));
  rejects(t, one('UINT8', [-1]), /-1 is out of range for UINT8/, single('UINT8'));
  rejects(t, one('INT32', [1.5]), /1.5 is not an integer/, single('INT32'));
  rejects(t, one('INT32', ['NaN']), /"NaN" is not an integer/, single('INT32'));
  rejects(t, one('INT32', [true]), /true is not an integer/, single('INT32'));
  rejects(t, one('INT64', [2 ** 60]), /is beyond 2\^53 and not written as an exact integer: write all its digits, or a decimal string/, single('INT64'));
  rejects(t, one('INT64', ['9223372036854775808']), /out of range for INT64/, single('INT64'));
  rejects(t, one('INT64', ['12abc']), /"12abc" is not an integer/, single('INT64'));
  rejects(t, one('UINT64', [-1]), /-1 is out of range for UINT64/, single('UINT64'));
  rejects(t, one('BOOL', [1]), /element 0: 1 is not a boolean \(true or false\)/, single('BOOL'));
  rejects(t, one('BOOL', ['true']), /is not a boolean/, single('BOOL'));
  rejects(t, one('BYTES', [5]), /element 0: 5 is not a string/, single('BYTES'));
  rejects(t, one('FP32', [1, 2, 'x'.repeat(100)]), /element 2: "x{36}\.\.\. is not a number/, single('FP32'));
});
