import { EntityManager } from 'typeorm';

/**
 * `INSERT … ` that adds `increments` onto an existing row with the same primary key instead
 * of failing: SQLite's ON CONFLICT … DO UPDATE and MySQL's ON DUPLICATE KEY UPDATE.
 * Values must be strings or numbers (no Dates: the drivers format those differently).
 */
export async function insertOrIncrement(
  manager: EntityManager,
  table: string,
  keyColumns: readonly string[],
  incrementColumns: readonly string[],
  rows: ReadonlyArray<Record<string, string | number>>,
): Promise<void> {
  if (rows.length === 0) return;
  const columns = [...keyColumns, ...incrementColumns];
  const placeholders = `(${columns.map(() => '?').join(', ')})`;
  const values = rows.flatMap((row) => columns.map((column) => row[column]));
  const sqlite = manager.connection.options.type === 'better-sqlite3';
  const quote = (name: string) => (sqlite ? `"${name}"` : `\`${name}\``);
  const head = `INSERT INTO ${quote(table)} (${columns.map(quote).join(', ')}) VALUES ${rows.map(() => placeholders).join(', ')}`;
  const tail = sqlite
    ? ` ON CONFLICT (${keyColumns.map(quote).join(', ')}) DO UPDATE SET ${incrementColumns.map((c) => `${quote(c)} = ${quote(c)} + excluded.${quote(c)}`).join(', ')}`
    : ` ON DUPLICATE KEY UPDATE ${incrementColumns.map((c) => `${quote(c)} = ${quote(c)} + VALUES(${quote(c)})`).join(', ')}`;
  await manager.query(head + tail, values);
}
