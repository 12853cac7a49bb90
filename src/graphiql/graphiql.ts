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
  const files: Record<string, string> = {
    'react.production.min.js': path.join(packageDir('react'), 'umd', 'react.production.min.js'),
    'react-dom.production.min.js': path.join(packageDir('react-dom'), 'umd', 'react-dom.production.min.js'),
    'graphiql.min.js': path.join(packageDir('graphiql'), 'graphiql.min.js'),
    'graphiql.min.css': path.join(packageDir('graphiql'), 'graphiql.min.css'),
  };
  for (const [name, file] of Object.entries(files)) {
    router.get(`/${name}`, (_req, res) => {
      res.sendFile(file, { maxAge: '1d', immutable: true });
    });
  }
  return router;
}

/** The page itself; `endpoint` is the path GraphiQL posts to. */
export function graphiqlPage(endpoint: string): string {
  // Headers start empty: GraphiQL sends them with its schema request on load, and the schema
  // (introspection) needs no key. The default query says where the key goes.
  const defaultQuery = [
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
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>keyward GraphiQL</title>
  <style>html, body, #graphiql { height: 100%; margin: 0; }</style>
  <link rel="stylesheet" href="${GRAPHIQL_ASSETS_PATH}/graphiql.min.css" />
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="${GRAPHIQL_ASSETS_PATH}/react.production.min.js"></script>
  <script src="${GRAPHIQL_ASSETS_PATH}/react-dom.production.min.js"></script>
  <script src="${GRAPHIQL_ASSETS_PATH}/graphiql.min.js"></script>
  <script>
    const url = new URL(${JSON.stringify(endpoint)}, window.location.href).toString();
    const fetcher = GraphiQL.createFetcher({ url });
    const root = ReactDOM.createRoot(document.getElementById('graphiql'));
    root.render(React.createElement(GraphiQL, {
      fetcher,
      defaultHeaders: '{}',
      defaultEditorToolsVisibility: 'headers',
      defaultQuery: ${JSON.stringify(defaultQuery)},
    }));
  </script>
</body>
</html>`;
}

export function wantsGraphiql(req: express.Request): boolean {
  return req.method === 'GET' && req.query.query === undefined && req.accepts(['application/json', 'text/html']) === 'text/html';
}
