/**
 * Baseline (a) of `npm run bench`: the same stack as keyward (Express 5, Apollo Server 5 through
 * @as-integrations/express5, a TypeGraphQL schema), answering `{ viewer { scopes } }` from a
 * constant: no auth, no plugins beyond draining, no database. Runs in its own process, listens on an ephemeral
 * port of 127.0.0.1 and reports it to the parent over IPC: { type: 'ready', port }.
 * Stops on the 'stop' message, SIGTERM/SIGINT or when the parent goes away.
 */
import 'reflect-metadata';
import http from 'node:http';
import express from 'express';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import { buildSchema, Field, ObjectType, Query, Resolver } from 'type-graphql';
import { PRESET_SCOPES, ScopePreset } from '../src/auth/scopes';

/** The scopes of keyward's READ preset, as keyward answers them for (b). */
const READ_SCOPES = [...PRESET_SCOPES[ScopePreset.READ]];

@ObjectType()
class Viewer {
  @Field(() => [String])
  scopes!: string[];
}

@Resolver()
class ViewerResolver {
  @Query(() => Viewer)
  viewer(): Viewer {
    return { scopes: READ_SCOPES };
  }
}

async function main(): Promise<void> {
  const schema = await buildSchema({ resolvers: [ViewerResolver], validate: false });
  const expressApp = express();
  expressApp.disable('x-powered-by');
  const httpServer = http.createServer(expressApp);
  const apollo = new ApolloServer({
    schema,
    csrfPrevention: true,
    plugins: [ApolloServerPluginDrainHttpServer({ httpServer }), ApolloServerPluginLandingPageDisabled()],
  });
  await apollo.start();
  expressApp.use('/graphql', express.json({ limit: 1024 * 1024 }), expressMiddleware(apollo, { context: async () => ({}) }));

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(0, '127.0.0.1', () => resolve());
  });
  const address = httpServer.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await apollo.stop().catch(() => undefined);
    process.exit(0);
  };
  process.on('message', (message) => {
    if (message === 'stop') void stop();
  });
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  process.send?.({ type: 'ready', port });
}

main().catch((error) => {
  console.error('bare-server failed to start:', error);
  process.exit(1);
});
