/** The error envelope of both dialects (CONTRACT 3c): tRPC's numbers, a name in `data.code`. */
export interface RpcErrorData {
  code: string;
  httpStatus: number;
  /** Invalid params: field path -> message. */
  fieldErrors?: Record<string, string>;
  [key: string]: unknown;
}

export interface RpcErrorObject {
  code: number;
  message: string;
  data?: RpcErrorData;
}

/** Raised for server errors, transport failures and misuse of the client. */
export class AlertwireError extends Error {
  override readonly name = 'AlertwireError';
  /** The JSON-RPC error code (e.g. -32003), or 0 for failures that never reached the server. */
  readonly code: number;
  readonly data: RpcErrorData | undefined;

  constructor(message: string, code = 0, data?: RpcErrorData, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.data = data;
  }

  /** `UNAUTHORIZED`, `FORBIDDEN`, `CONFLICT`, ...; `CLIENT` for failures that never reached the server. */
  get kind(): string {
    return this.data?.code ?? 'CLIENT';
  }

  static fromRpc(error: unknown): AlertwireError {
    if (isErrorObject(error)) {
      return new AlertwireError(error.message, error.code, error.data);
    }
    return new AlertwireError('Malformed error from server', -32603);
  }
}

export function isErrorObject(value: unknown): value is RpcErrorObject {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'number' &&
    typeof (value as { message?: unknown }).message === 'string'
  );
}

export const UNAUTHORIZED = -32001;
