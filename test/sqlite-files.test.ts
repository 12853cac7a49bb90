import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../src/db/data-source';

/** The SQLite database and its companions are readable by keyward's user only. */
describe('SQLite files', () => {
  let root: string;
  beforeEach(() => { root = fs.mkdtempSync(path.join(os.tmpdir(), 'keyward-files-')); });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const modeOf = (file: string) => (fs.statSync(file).mode & 0o777).toString(8);

  it('are created 0600 (database, -wal, -shm) in a data directory created 0700, whatever the umask', async () => {
    const previous = process.umask(0o022);
    try {
      const file = path.join(root, 'data', 'keyward.sqlite');
      const dataSource = await openDatabase({ kind: 'sqlite', path: file });
      await dataSource.query('SELECT COUNT(*) FROM organizations');
      expect({
        dir: modeOf(path.dirname(file)), database: modeOf(file), wal: modeOf(`${file}-wal`), shm: modeOf(`${file}-shm`),
      }).toEqual({ dir: '700', database: '600', wal: '600', shm: '600' });
      await dataSource.destroy();
    } finally {
      process.umask(previous);
    }
  });

  it('makes an existing database file that others could read 0600', async () => {
    const file = path.join(root, 'keyward.sqlite');
    fs.writeFileSync(file, '', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const dataSource = await openDatabase({ kind: 'sqlite', path: file });
    expect(modeOf(file)).toBe('600');
    await dataSource.destroy();
  });
});
