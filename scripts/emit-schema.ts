// Writes schema.graphql from the code. `npm run schema`; a test fails when the file drifts.
import fs from 'node:fs';
import path from 'node:path';
import { printKeywardSchema } from '../src/schema';

const target = path.join(__dirname, '..', '..', 'schema.graphql');
printKeywardSchema().then((sdl) => {
  fs.writeFileSync(target, sdl);
  console.log(`wrote ${path.relative(process.cwd(), target)}`);
});
