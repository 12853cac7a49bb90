import http from 'node:http';
import { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One request a receiver got. */
export interface ReceivedWebhook {
  headers: Record<string, string>;
  /** The raw body, as signed. */
  body: string;
  /** The body parsed: { type, timestamp, data }. */
  json: { type: string; timestamp: string; data: Record<string, any> };
  /** The status it was answered with. */
  answeredWith: number;
}

export interface Answer {
  status: number;
  headers?: Record<string, string>;
}

/**
 * A webhook receiver for tests: an HTTP server on 127.0.0.1 (never any other address) that
 * records every request and answers with the statuses queued by `answer(...)`, then 200.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  private readonly answers: Answer[] = [];
  private readonly waiters: Array<() => void> = [];

  private constructor(private readonly server: http.Server, readonly port: number) {}

  /** On a free port, or on `port` (a receiver that comes back where an endpoint points). */
  static async start(port = 0): Promise<WebhookReceiver> {
    let receiver!: WebhookReceiver;
    const server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => receiver.record(request, Buffer.concat(chunks).toString('utf8'), response));
    });
    const bound = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    });
    receiver = new WebhookReceiver(server, bound);
    return receiver;
  }

  /** http://127.0.0.1:<port><path> */
  url(path = '/hooks/keyward'): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** The next requests are answered with these, in order; after them, 200. */
  answer(...answers: Array<number | Answer>): void {
    this.answers.push(...answers.map((answer) => (typeof answer === 'number' ? { status: answer } : answer)));
  }

  /** Forgets the answers still queued: 200 from now on. */
  clearAnswers(): void {
    this.answers.splice(0);
  }

  /** Resolves once `count` requests arrived in all; fails after `timeoutMs` saying how many did. */
  async waitFor(count: number, timeoutMs = 5_000): Promise<ReceivedWebhook[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the receiver got ${this.received.length} requests, not ${count}: ${JSON.stringify(this.received.map((request) => request.json.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received.slice(0, count);
  }

  /** The events received, by their `type`. */
  ofType(type: string): ReceivedWebhook[] {
    return this.received.filter((request) => request.json.type === type);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private record(request: http.IncomingMessage, body: string, response: http.ServerResponse): void {
    const answer = this.answers.shift() ?? { status: 200 };
    const headers = Object.fromEntries(Object.entries(request.headers).map(([name, value]) => [name, String(value)]));
    let json: ReceivedWebhook['json'];
    try {
      json = JSON.parse(body);
    } catch {
      json = { type: '(not JSON)', timestamp: '', data: {} };
    }
    this.received.push({ headers, body, json, answeredWith: answer.status });
    response.writeHead(answer.status, answer.headers).end();
    for (const wake of this.waiters.splice(0)) wake();
  }
}

/** The body parsed by the Standard Webhooks verifier with `secret`; throws when the signature does not match. */
export function verifySignature(secret: string, request: ReceivedWebhook): unknown {
  return new Webhook(secret).verify(request.body, {
    'webhook-id': request.headers['webhook-id'],
    'webhook-timestamp': request.headers['webhook-timestamp'],
    'webhook-signature': request.headers['webhook-signature'],
  });
}
