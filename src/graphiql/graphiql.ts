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
  const defaultHeaders = JSON.stringify({ Authorization: 'Bearer <paste your kw_live_… key here>' }, null, 2);
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
      defaultHeaders: ${JSON.stringify(defaultHeaders)},
      defaultEditorToolsVisibility: 'headers',
      defaultQuery: '# Put your API key in the Headers tab below, then run:\\n{\\n  viewer {\\n    organization { id name }\\n    apiKey { id name hint status }\\n    scopes\\n  }\\n}\\n',
    }));
  </script>
</body>
</html>`;
}

export function wantsGraphiql(req: express.Request): boolean {
  return req.method === 'GET' && req.query.query === undefined && req.accepts(['application/json', 'text/html']) === 'text/html';
}
