/**
 * A platform API protected by keyward: a public health route and `POST /v1/predict`, which
 * needs a key holding `inference:run` and records the tokens it used.
 *
 *   npm run build
 *   KEYWARD_URL=http://localhost:4000/graphql KEYWARD_API_KEY=kw_live_… PORT=3000 node dist/examples/protected-api.js
 *
 * KEYWARD_API_KEY is a service key of the platform organization with `keys:verify` and
 * `usage:write` (see examples/README.md). It imports the client package as any app would
 * (`npm install @keyward/client`); in this repository that is the workspace packages/client.
 */
import http from 'node:http';
import express, { Express } from 'express';
import { KeywardClient } from '@keyward/client';
import { keyward } from '@keyward/client/express';

export function createProtectedApi(client: KeywardClient): Express {
  const app = express();
  app.disable('x-powered-by');
  // Behind a load balancer, tell Express which proxies to trust so req.ip (checked against
  // each key's IP allowlist) is the client's address, e.g. app.set('trust proxy', 1).

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.post('/v1/predict', express.json({ limit: '1mb' }), keyward({ client, requiredScopes: ['inference:run'] }), (req, res) => {
    const prompt = typeof req.body?.prompt === 'string' ? req.body.prompt : '';
    // Stand-in for a model: the "cost" of a prediction is its prompt, about 4 characters a token.
    const tokens = Math.ceil(prompt.length / 4);
    res.locals.keywardTokens = tokens;
    const caller = req.keyward?.valid ? req.keyward.organizationId : null;
    res.json({ prediction: prompt.split('').reverse().join(''), tokens, organizationId: caller });
  });

  return app;
}

function main(): void {
  const apiKey = process.env.KEYWARD_API_KEY;
  if (!apiKey) {
    console.error('protected-api: set KEYWARD_API_KEY to a service key with keys:verify and usage:write');
    process.exit(1);
  }
  const port = Number(process.env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`protected-api: PORT must be a port number (got "${process.env.PORT}")`);
    process.exit(1);
  }
  const client = new KeywardClient({ url: process.env.KEYWARD_URL ?? 'http://localhost:4000/graphql', apiKey });
  const server = http.createServer(createProtectedApi(client));
  server.listen(port, () => {
    const { port: actual } = server.address() as { port: number };
    console.log(`protected-api listening on http://localhost:${actual} (keyward at ${client.url})`);
  });
  // Stop accepting requests; the process exits once the last usage records are sent.
  const stop = () => server.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) main();
