import { CloseCode } from 'graphql-ws';

export const SUBSCRIPTION_LIMITS = {
  /** Subscriptions one connection may hold at once. */
  perConnection: 50,
  /** A connection that sends no connection_init is closed (4408) after this many ms. */
  connectionInitWaitTimeoutMs: 3_000,
  /** graphql-ws pings every socket this often (ms); one that does not answer (pong) within it is dropped. */
  keepAliveMs: 15_000,
  /** How often expiry of connected keys is checked (ms): closes within a second. */
  expiryCheckMs: 500,
} as const;

/** Close codes beyond graphql-ws's own (which keep their meaning: 4408, 4429, …). */
export const LiveCloseCode = {
  /** No key, or a key that does not authenticate. */
  Unauthorized: CloseCode.Unauthorized, // 4401
  /** The key stopped working while connected (revoked, disabled, deleted, expired, organization suspended). */
  Forbidden: CloseCode.Forbidden, // 4403
  /** Its key or its client address already holds as many sockets as allowed (MAX_WEBSOCKETS_PER_KEY / _PER_ADDRESS). */
  TooManyConnections: 4029,
  /** A backing store (database or Redis) is unreachable: connect again shortly (WebSocket "Try Again Later"). */
  TryAgainLater: 1013,
  GoingAway: 1001,
} as const;
