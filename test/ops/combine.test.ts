/**
 * The graphs' tensor work on its own: reductions across members for every
 * datatype they take, and rows taken out of a batch and put back.
 */
import t from 'tap';
import { floatToHalf, halfToFloat, type Tensor } from '@modelgate/client/codec';
import { combinable, combineTensors, mergeRows, rowMaxima, takeRows } from '../../src/ops/combine.ts';

const fp32 = (data: number[], shape = [data.length]): Tensor => ({ datatype: 'FP32', shape, data: new Float32Array(data) });

t.test('mean and weighted_mean, in FP32 and in FP16 (read and written as halves)', async (t) => {
  t.same(Array.from(combineTensors('mean', [fp32([1, 2]), fp32([3, 6])], [1, 1]).data as Float32Array), [2, 4]);
  t.same(Array.from(combineTensors('weighted_mean', [fp32([1, 2]), fp32([3, 6])], [3, 1]).data as Float32Array), [1.5, 3]);
  const half = (values: number[]): Tensor => ({ datatype: 'FP16', shape: [values.length], data: Uint16Array.from(values, floatToHalf) });
  const mean = combineTensors('mean', [half([0.5, -2]), half([1.5, 4])], [1, 1]);
  t.equal(mean.datatype, 'FP16');
  t.same(Array.from(mean.data as Uint16Array, halfToFloat), [1, 1]);
});

t.test('max and min keep the winning member\'s element exactly, 64-bit integers included', async (t) => {
  const big = (values: bigint[]): Tensor => ({ datatype: 'INT64', shape: [values.length], data: BigInt64Array.from(values) });
  const max = combineTensors('max', [big([2n ** 62n + 1n, -5n]), big([2n ** 62n, -4n])], [1, 1]);
  t.same(Array.from(max.data as BigInt64Array), [2n ** 62n + 1n, -4n]);
  t.same(Array.from(combineTensors('min', [fp32([1, 9]), fp32([2, -3]), fp32([0.5, 4])], [1, 1, 1]).data as Float32Array), [0.5, -3]);
});

t.test('vote: the most frequent value per element; a tie goes to the earliest member', async (t) => {
  const labels = (values: number[]): Tensor => ({ datatype: 'INT32', shape: [values.length], data: Int32Array.from(values) });
  // Element 0: 1 twice. Element 1: a three-way tie: the first member's 7. Element 2: 5 twice.
  t.same(Array.from(combineTensors('vote', [labels([1, 7, 6]), labels([2, 8, 5]), labels([1, 9, 5])], [1, 1, 1]).data as Int32Array), [1, 7, 5]);
  const words = (values: string[]): Tensor => ({ datatype: 'BYTES', shape: [values.length], data: values });
  t.same(combineTensors('vote', [words(['cat', 'dog']), words(['dog', 'cow']), words(['dog', 'cat'])], [1, 1, 1]).data, ['dog', 'dog']);
});

t.test('which datatypes each op takes', async (t) => {
  t.same(['FP16', 'FP32', 'FP64', 'INT64', 'BYTES'].map((datatype) => combinable('mean', datatype as never)), [true, true, true, false, false]);
  t.same(['INT8', 'UINT64', 'FP32', 'BOOL', 'BYTES'].map((datatype) => combinable('max', datatype as never)), [true, true, true, false, false]);
  t.same(['BOOL', 'INT64', 'BYTES', 'FP32'].map((datatype) => combinable('vote', datatype as never)), [true, true, true, false]);
});

t.test('rows: each row\'s largest element, rows taken in any order, and put back where they were', async (t) => {
  const scores = fp32([0.25, 0.75, 0.5, 0.125, Number.NaN, 0.375], [3, 2]);
  t.same(Array.from(rowMaxima(scores)), [0.75, 0.5, Number.NaN], 'a NaN row has a NaN maximum, which no rule accepts');
  const taken = takeRows(fp32([1, 2, 3, 4, 5, 6], [3, 2]), [2, 0]);
  t.same([taken.shape, Array.from(taken.data as Float32Array)], [[2, 2], [5, 6, 1, 2]]);
  const strings = takeRows({ datatype: 'BYTES', shape: [3], data: ['a', 'b', 'c'] }, [1]);
  t.same(strings.data, ['b']);
  const merged = mergeRows([{ tensor: fp32([10, 11, 30, 31], [2, 2]), rows: [0, 2] }, { tensor: fp32([20, 21], [1, 2]), rows: [1] }], 3);
  t.same([merged.shape, Array.from(merged.data as Float32Array)], [[3, 2], [10, 11, 20, 21, 30, 31]]);
});
