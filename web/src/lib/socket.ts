import { io, type Socket } from 'socket.io-client';
import type { Ack, ClientEvent, Reply } from './protocol';

/** Socket.IO to the page's own origin (the streamhub binary, or Vite's proxy in dev). */
export function connect(): Socket {
  return io({
    path: '/socket.io/',
    reconnectionDelay: 500,
    reconnectionDelayMax: 4000,
    timeout: 8000,
  });
}

/**
 * Emits with an ack and a timeout. Never throws: a timeout or a closed connection comes
 * back as a failure ack ({code: 'TIMEOUT' | 'DISCONNECTED'}). Nothing is queued while the
 * connection is down (socket.io would otherwise buffer it and send it on reconnect).
 */
export async function request<T extends object = object>(
  socket: Socket,
  event: ClientEvent,
  payload?: unknown,
  timeoutMs = 5000,
): Promise<Reply<T>> {
  if (!socket.connected) {
    return { ok: false, error: { code: 'DISCONNECTED', message: 'Not connected to the server.' } };
  }
  try {
    const s = socket.timeout(timeoutMs);
    const res = (payload === undefined ? await s.emitWithAck(event) : await s.emitWithAck(event, payload)) as Ack<T>;
    if (res && typeof res === 'object' && 'ok' in res) return res;
    return { ok: false, error: { code: 'BAD_ACK', message: 'Unexpected answer from the server.' } };
  } catch {
    return { ok: false, error: { code: 'TIMEOUT', message: 'The server did not answer in time.' } };
  }
}

/** Packets waiting in Engine.IO's write buffer (grows when the upload cannot keep up). */
export function engineWriteBuffer(socket: Socket): number {
  const engine = socket.io.engine as unknown as { writeBuffer?: unknown[] } | undefined;
  return engine?.writeBuffer?.length ?? 0;
}

export const UNREACHABLE_TEXT = 'Server unreachable. Retrying…';
