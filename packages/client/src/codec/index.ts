/**
 * The Open Inference Protocol's codec, shared by the client and the server:
 * datatypes and their conversions, exact JSON for 64-bit integers, Triton's
 * binary tensor extension, body compression, the protocol's types, and what
 * both sides of gRPC share (the definition's path, InferParameters). Node's
 * own modules only: no web framework, no onnxruntime.
 */
export * from './binary.ts';
export * from './compression.ts';
export * from './datatypes.ts';
export * from './encode.ts';
export * from './errors.ts';
export * from './grpc.ts';
export * from './json.ts';
export * from './types.ts';
