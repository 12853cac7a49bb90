import { Arg, Ctx, Mutation, Resolver } from 'type-graphql';
import { VerifyKeyInput, VerifyKeyResult } from './verify-key.type';
import { RequireScope } from './directives';
import { actorOf, Context } from '../context';

@Resolver()
export class VerifyKeyResolver {
  /** A refused key is data (`valid: false` and a code), never a GraphQL error. */
  @Mutation(() => VerifyKeyResult, { description: "Checks a key presented to your API (the full pipeline: status, IP, scopes, rate limits, quotas, session) and counts it; a refused key is an answer with its code, never an error." })
  @RequireScope('keys:verify')
  verifyKey(@Arg('input', () => VerifyKeyInput) input: VerifyKeyInput, @Ctx() ctx: Context) {
    return ctx.app.verifyKey.verify(actorOf(ctx), input);
  }
}
