import { Arg, Ctx, Mutation, Resolver } from 'type-graphql';
import { VerifyKeyInput, VerifyKeyResult } from './verify-key.type';
import { RequireScope } from './directives';
import { actorOf, Context } from '../context';

@Resolver()
export class VerifyKeyResolver {
  /** A refused key is data (`valid: false` and a code), never a GraphQL error. */
  @Mutation(() => VerifyKeyResult)
  @RequireScope('keys:verify')
  verifyKey(@Arg('input', () => VerifyKeyInput) input: VerifyKeyInput, @Ctx() ctx: Context) {
    return ctx.app.verifyKey.verify(actorOf(ctx), input);
  }
}
