import http from 'node:http';
import https from 'node:https';
import { lookup as dnsLookup, LookupAddress } from 'node:dns';
import { isIP, LookupFunction } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { Clock } from '../clock';
import { privateAddressKind, privateAddressProblem } from './webhook-address';

/** One attempt to deliver one event: what is POSTed, and where. */
export interface WebhookMessage {
  url: string;
  /** The endpoint's whsec_ secret. */
  secret: string;
  /** The webhook-id header, the same on every attempt. */
  eventId: string;
  /** The exact JSON body (signed as sent). */
  body: string;
}

/** Why an attempt failed; `http_error` is any answer other than 2xx (redirects included). */
export type AttemptFailure = 'http_error' | 'timeout' | 'network_error' | 'blocked';

export type AttemptResult =
  | { delivered: true; statusCode: number }
  | { delivered: false; statusCode: number | null; failure: AttemptFailure; error: string };

export interface WebhookSenderOptions {
  /** WEBHOOK_ALLOW_PRIVATE: deliver to private, loopback and link-local addresses too. */
  allowPrivate: boolean;
  /** An attempt without a 2xx answer within this many milliseconds failed (10 s). */
  timeoutMs: number;
  /**
   * What webhook-timestamp says: the real time of the attempt. Receivers check it against their
   * own clock (Standard Webhooks allows 5 minutes either way), so it is never the injected clock.
   */
  wallClock: Clock;
}

/** An attempt without a 2xx answer within this long failed (10 s). */
export const WEBHOOK_TIMEOUT_MS = 10_000;

/** The most of an answer's body read before the connection is dropped (nothing of it is kept). */
const MAX_RESPONSE_BYTES = 64 * 1024;

class BlockedAddress extends Error {
  readonly code = 'EWEBHOOKBLOCKED';
}

/**
 * POSTs one signed event (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
 * `v1,<base64 HMAC-SHA256>`, signed by the `standardwebhooks` package). Every attempt resolves
 * the host again and refuses private, loopback and link-local addresses on the address it
 * connects to (no rebinding between a check and the connection), whatever the scheme; redirects
 * are answers like any other, never followed; no connection is reused.
 */
export class WebhookSender {
  constructor(private readonly options: WebhookSenderOptions) {}

  send(message: WebhookMessage): Promise<AttemptResult> {
    const url = new URL(message.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return Promise.resolve({ delivered: false, statusCode: null, failure: 'blocked', error: `only http and https are delivered to (got ${url.protocol})` });
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (!this.options.allowPrivate && isIP(host) !== 0) {
      const kind = privateAddressKind(host);
      if (kind) return Promise.resolve({ delivered: false, statusCode: null, failure: 'blocked', error: privateAddressProblem(host, kind) });
    }
    const sentAt = this.options.wallClock.now();
    const headers = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(message.body)),
      'user-agent': 'keyward-webhooks',
      'webhook-id': message.eventId,
      'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
      'webhook-signature': new Webhook(message.secret).sign(message.eventId, sentAt, message.body),
    };
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (result: AttemptResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(result);
      };
      const request = transport.request(url, { method: 'POST', headers, agent: false, lookup: this.guardedLookup() }, (response) => {
        const statusCode = response.statusCode ?? 0;
        let read = 0;
        response.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_RESPONSE_BYTES) response.destroy();
        });
        const done = () => finish(statusCode >= 200 && statusCode < 300
          ? { delivered: true, statusCode }
          : { delivered: false, statusCode, failure: 'http_error', error: statusCode >= 300 && statusCode < 400 ? `HTTP ${statusCode} (redirects are not followed)` : `HTTP ${statusCode}` });
        response.on('end', done);
        response.on('close', done);
        response.on('error', done);
      });
      const timer = setTimeout(() => {
        finish({ delivered: false, statusCode: null, failure: 'timeout', error: `no answer within ${this.options.timeoutMs / 1000} s` });
        request.destroy();
      }, this.options.timeoutMs);
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (error instanceof BlockedAddress) finish({ delivered: false, statusCode: null, failure: 'blocked', error: error.message });
        else finish({ delivered: false, statusCode: null, failure: 'network_error', error: describeNetworkError(error) });
      });
      request.end(message.body);
    });
  }

  /** dns.lookup, refusing every answer when one of its addresses is private (unless allowed). */
  private guardedLookup(): LookupFunction {
    const allowPrivate = this.options.allowPrivate;
    return (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
        if (error) return callback(error, '', 0);
        const refused = allowPrivate ? undefined : addresses.map((entry) => ({ entry, kind: privateAddressKind(entry.address) })).find(({ kind }) => kind);
        if (refused) return callback(new BlockedAddress(privateAddressProblem(refused.entry.address, refused.kind!, hostname)), '', 0);
        if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
        if (options.all) return (callback as unknown as (error: null, addresses: LookupAddress[]) => void)(null, addresses);
        return callback(null, addresses[0].address, addresses[0].family);
      });
    };
  }
}

/** A network failure in a few words; never the URL (its path or query may be private to its owner). */
function describeNetworkError(error: NodeJS.ErrnoException): string {
  const text = `${error.code ? `${error.code}: ` : ''}${error.message}`;
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}
