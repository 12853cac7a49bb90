import path from 'node:path';
import express, { Router } from 'express';

/**
 * GraphiQL served from the installed packages (no CDN: it works offline). The page keeps
 * Apollo's CSRF prevention on: GraphiQL posts JSON, which a browser cannot forge cross-site.
 */
const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`));

export const GRAPHIQL_ASSETS_PATH = '/graphiql-assets';

export function graphiqlAssets(): Router {
  const router = Router();
  router.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  const files: Record<string, string> = {
    'react.production.min.js': path.join(packageDir('react'), 'umd', 'react.production.min.js'),
    'react-dom.production.min.js': path.join(packageDir('react-dom'), 'umd', 'react-dom.production.min.js'),
    'graphiql.min.js': path.join(packageDir('graphiql'), 'graphiql.min.js'),
    'graphiql.min.css': path.join(packageDir('graphiql'), 'graphiql.min.css'),
    'graphql-ws.min.js': path.join(packageDir('graphql-ws'), 'umd', 'graphql-ws.min.js'),
  };
  for (const [name, file] of Object.entries(files)) {
    router.get(`/${name}`, (_req, res) => {
      res.sendFile(file, { maxAge: '1d', immutable: true });
    });
  }
  // The page's own script and style are files too: its Content-Security-Policy allows no inline code.
  router.get('/graphiql-setup.js', (_req, res) => {
    res.type('js').set('Cache-Control', 'no-cache').send(SETUP_SCRIPT);
  });
  router.get('/graphiql-page.css', (_req, res) => {
    res.type('css').set('Cache-Control', 'no-cache').send('html, body, #graphiql { height: 100%; margin: 0; }\n');
  });
  return router;
}

// Headers start empty: GraphiQL sends them with its schema request on load, and the schema
// (introspection) needs no key. The default query says where the key goes.
const DEFAULT_QUERY = [
  '# Welcome to keyward. Put your API key in the Headers tab below:',
  '#   { "Authorization": "Bearer kw_live_..." }',
  '# then run this query (Ctrl-Enter).',
  '{',
  '  viewer {',
  '    organization { id name }',
  '    apiKey { id name hint status }',
  '    scopes',
  '  }',
  '}',
  '',
].join('\n');

/**
 * Starts GraphiQL in #graphiql; the endpoint and the default query come from its data
 * attributes. String.raw: the script's regular expressions keep their backslashes.
 */
const SETUP_SCRIPT = String.raw`'use strict';
(function () {
  const element = document.getElementById('graphiql');
  const url = new URL(element.dataset.endpoint, window.location.href).toString();
  const wsUrl = url.replace(/^http/, 'ws');
  const httpFetcher = GraphiQL.createFetcher({ url });

  // Subscriptions go over graphql-ws on the same path; the key in the Headers tab becomes the
  // connection's connectionParams (one socket per distinct key).
  const sockets = new Map();
  function socketFor(headers) {
    const find = (name) => Object.keys(headers || {}).find((header) => header.toLowerCase() === name);
    const authorization = find('authorization') && headers[find('authorization')];
    const apiKey = find('x-api-key') && headers[find('x-api-key')];
    const params = authorization ? { authorization } : apiKey ? { apiKey } : {};
    const id = JSON.stringify(params);
    if (!sockets.has(id)) sockets.set(id, graphqlWs.createClient({ url: wsUrl, connectionParams: params, retryAttempts: 0 }));
    return sockets.get(id);
  }
  function isSubscription(query, operationName) {
    const source = String(query).replace(/#[^\n]*/g, '').replace(/"(?:[^"\\]|\\.)*"/g, '""');
    const operations = [...source.matchAll(/(?:^|[}\s])(query|mutation|subscription)\b\s*([_A-Za-z][_0-9A-Za-z]*)?/g)];
    const chosen = operationName ? operations.find((match) => match[2] === operationName) : operations[0];
    return Boolean(chosen && chosen[1] === 'subscription');
  }
  // graphql-ws rejects with the socket's CloseEvent; say what the server said instead. A plain
  // iterator (not an async generator) so GraphiQL's stop reaches graphql-ws at once.
  function subscribe(params, headers) {
    const inner = socketFor(headers).iterate(params);
    const explain = (error) => {
      if (error && typeof error.code === 'number') {
        throw new Error('The socket was closed with ' + error.code + (error.reason ? ': ' + error.reason : ''));
      }
      throw error;
    };
    return {
      [Symbol.asyncIterator]() { return this; },
      next: () => inner.next().catch(explain),
      return: (value) => inner.return(value),
      throw: (error) => inner.throw(error),
    };
  }
  const fetcher = (params, options) =>
    isSubscription(params.query, params.operationName)
      ? subscribe(params, options && options.headers)
      : httpFetcher(params, options);
  const root = ReactDOM.createRoot(element);
  root.render(React.createElement(GraphiQL, {
    fetcher,
    defaultHeaders: '{}',
    defaultEditorToolsVisibility: 'headers',
    defaultQuery: element.dataset.defaultQuery,
  }));
})();
`;

const escapeAttribute = (value: string) => value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The page itself; `endpoint` is the path GraphiQL posts to. Served with pageSecurityHeaders. */
export function graphiqlPage(endpoint: string): string {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>keyward GraphiQL</title>
  <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
  <link rel="stylesheet" href="${GRAPHIQL_ASSETS_PATH}/graphiql-page.css" />
  <link rel="stylesheet" href="${GRAPHIQL_ASSETS_PATH}/graphiql.min.css" />
</head>
<body>
  <div id="graphiql" data-endpoint="${escapeAttribute(endpoint)}" data-default-query="${escapeAttribute(DEFAULT_QUERY)}">Loading GraphiQL…</div>
  <script src="${GRAPHIQL_ASSETS_PATH}/react.production.min.js"></script>
  <script src="${GRAPHIQL_ASSETS_PATH}/react-dom.production.min.js"></script>
  <script src="${GRAPHIQL_ASSETS_PATH}/graphiql.min.js"></script>
  <script src="${GRAPHIQL_ASSETS_PATH}/graphql-ws.min.js"></script>
  <script src="${GRAPHIQL_ASSETS_PATH}/graphiql-setup.js"></script>
</body>
</html>`;
}

export function wantsGraphiql(req: express.Request): boolean {
  return req.method === 'GET' && req.query.query === undefined && req.accepts(['application/json', 'text/html']) === 'text/html';
}
