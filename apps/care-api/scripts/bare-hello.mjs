// The control of the load run: a bare Fastify 5 hello route, no plugins, no logging, in its own process like the
// service. `node scripts/bare-hello.mjs <port>`.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
await app.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0) });
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
