// One small Postgres pool per isolate, as Supabase documents for edge functions
// (prepare: false so the transaction pooler works in production).
import postgres from "postgres";

export type Sql = postgres.Sql;

export function connect(url: string, max = 4): Sql {
  return postgres(url, {
    max,
    prepare: false,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
  });
}
