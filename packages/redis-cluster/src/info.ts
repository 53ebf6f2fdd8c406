/** `INFO` parsed into sections (lower-case names) of string fields. */
export type ParsedInfo = Record<string, Record<string, string>>;

export function parseInfo(text: string): ParsedInfo {
  const result: ParsedInfo = {};
  let section: Record<string, string> = {};
  result.default = section;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trimEnd();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const name = line.slice(1).trim().toLowerCase();
      section = result[name] ?? {};
      result[name] = section;
      continue;
    }
    const index = line.indexOf(':');
    if (index <= 0) continue;
    section[line.slice(0, index)] = line.slice(index + 1);
  }
  if (Object.keys(result.default ?? {}).length === 0) delete result.default;
  return result;
}
