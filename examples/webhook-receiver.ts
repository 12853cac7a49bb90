/**
 * A backend receiving keyward's webhooks: verifies each delivery's signature (Standard
 * Webhooks, with the `standardwebhooks` package), handles each event once (deliveries are at
 * least once: a retry repeats the webhook-id), and answers 2xx within 10 seconds.
 *
 *   npm run build
 *   KEYWARD_WEBHOOK_SECRET=whsec_… PORT=3001 node dist/examples/webhook-receiver.js
 *
 * The secret is the one createWebhookEndpoint (or rotateWebhookSecret) showed once.
 */
import http from 'node:http';
import express, { Express } from 'express';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

/** What keyward POSTs: `type` is e.g. quota.threshold, key.revoked; `data` names the organization and key. */
export interface KeywardEvent {
  type: string;
  timestamp: string;
  data: { organizationId: string; apiKeyId?: string | null; [field: string]: unknown };
}

export function createWebhookReceiver(secret: string, handle: (event: KeywardEvent, webhookId: string) => void): Express {
  const webhook = new Webhook(secret);
  // Ids of events already handled. Keep them in your database: a restart must not handle one twice.
  const handled = new Set<string>();
  const app = express();
  app.disable('x-powered-by');

  // The signature covers the body's exact bytes: read it raw, and parse it only by verifying it.
  app.post('/hooks/keyward', express.raw({ type: 'application/json', limit: '1mb' }), (req, res) => {
    let event: KeywardEvent;
    try {
      event = webhook.verify(req.body as Buffer, {
        'webhook-id': req.get('webhook-id') ?? '',
        'webhook-timestamp': req.get('webhook-timestamp') ?? '',
        'webhook-signature': req.get('webhook-signature') ?? '',
      }) as KeywardEvent;
    } catch (error) {
      if (!(error instanceof WebhookVerificationError)) throw error;
      res.status(400).json({ error: `not a delivery from keyward: ${error.message}` });
      return;
    }
    const webhookId = req.get('webhook-id')!;
    if (!handled.has(webhookId)) {
      handled.add(webhookId);
      handle(event, webhookId);
    }
    // Answer at once (keyward waits at most 10 s); slow work belongs in a queue.
    res.status(204).end();
  });
  return app;
}

function main(): void {
  const secret = process.env.KEYWARD_WEBHOOK_SECRET;
  if (!secret?.startsWith('whsec_')) {
    console.error('webhook-receiver: set KEYWARD_WEBHOOK_SECRET to the endpoint\'s signing secret (whsec_…)');
    process.exit(1);
  }
  const port = Number(process.env.PORT ?? 3001);
  const app = createWebhookReceiver(secret, (event, webhookId) => {
    console.log(JSON.stringify({ webhookId, type: event.type, organizationId: event.data.organizationId, apiKeyId: event.data.apiKeyId ?? null }));
  });
  const server = http.createServer(app);
  server.listen(port, () => {
    const address = server.address();
    console.log(`webhook-receiver listening on http://localhost:${typeof address === 'object' && address ? address.port : port}/hooks/keyward`);
  });
}

if (require.main === module) main();
