import t from 'tap';
import { jsonText, parseJson, parseJsonExact } from '@modelgate/client/codec';

t.test('parseJsonExact reads integers beyond 2^53 exactly, as bigints; everything else as JSON.parse reads it', async (t) => {
  t.same(parseJsonExact('[9007199254740991,9007199254740992,-9223372036854775808,18446744073709551615]'), [9007199254740991, 9007199254740992n, -9223372036854775808n, 18446744073709551615n]);
  t.same(parseJsonExact('{"a": 1152921504606846977, "b":[ 1152921504606846977 ]}'), { a: 1152921504606846977n, b: [1152921504606846977n] });
  t.same(parseJsonExact('[1234567890123456]'), [1234567890123456], 'a long but safe integer stays a number');
  t.same(parseJsonExact('[0.10000000149011612,12345678901234567890.5,1e+300,12345678901234567890e0]'), [0.10000000149011612, 12345678901234567890.5, 1e300, 12345678901234567890], 'floats are untouched, exponents included');
  t.same(parseJsonExact('["12345678901234567890"]'), ['12345678901234567890'], 'digits inside strings stay strings');
  t.same(parseJson('[1152921504606846977]'), [1152921504606846976], 'parseJson is JSON.parse: it rounds');
});

t.test("bare NaN and Infinity, as Python's JSON writers emit them, read as the strings V2 floats accept", async (t) => {
  t.same(parseJson('[NaN,Infinity,-Infinity,1.5]'), ['NaN', 'Infinity', '-Infinity', 1.5]);
  t.same(parseJsonExact('[NaN,18446744073709551615]'), ['NaN', 18446744073709551615n]);
  t.same(parseJson('{"s":"NaN and \\"Infinity\\"","v":[NaN]}'), { s: 'NaN and "Infinity"', v: ['NaN'] }, 'strings are left alone, escapes included');
  t.throws(() => parseJson('[NaNa]'), SyntaxError);
  t.throws(() => parseJson('{"inputs": ['), SyntaxError);
});

t.test('jsonText writes bigints as the integers they are', async (t) => {
  t.equal(jsonText([1, 18446744073709551616n, 'x']), '[1,18446744073709551616,"x"]');
  t.equal(jsonText(undefined), 'undefined');
});
