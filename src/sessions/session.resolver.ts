import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { Session, SessionBalance, SessionPage } from './session.type';
import { AddSessionCreditsInput, CreateSessionInput } from './session.inputs';
import { SessionEntity, SessionStatus } from './session.entity';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';
import { SafeIntScalar } from '../scalars';

@Resolver(() => Session)
export class SessionResolver {
  @Query(() => Session, { nullable: true, description: "A session of the caller's organization." })
  @RequireScope('sessions:read')
  session(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.sessions.get(actorOf(ctx), id);
  }

  @Query(() => SessionPage, { description: "The organization's sessions, newest first." })
  @RequireScope('sessions:read')
  sessions(
    @Arg('status', () => SessionStatus, { nullable: true }) status: SessionStatus | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 50 }) first: number | null,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: Context,
  ) {
    return ctx.app.sessions.list(actorOf(ctx), status, first, after);
  }

  @Query(() => Session, { nullable: true, description: "The caller organization's active session, if any." })
  @RequireScope('sessions:read')
  currentSession(@Ctx() ctx: Context) {
    return ctx.app.sessions.active(actorOf(ctx).organizationId!);
  }

  @Query(() => SessionBalance, { description: 'Sessions bought, used and still available (the caller\'s organization by default).' })
  @RequireScope('sessions:read')
  sessionBalance(@Arg('organizationId', () => ID, { nullable: true }) organizationId: string | null, @Ctx() ctx: Context) {
    return ctx.app.sessions.balance(actorOf(ctx), organizationId);
  }

  @Mutation(() => Session, { description: "Starts a metered session for the caller's key, spending one from the organization's sessionBalance." })
  @RequireScope('sessions:write')
  createSession(@Arg('input', () => CreateSessionInput, { nullable: true }) input: CreateSessionInput | null, @Ctx() ctx: Context) {
    return ctx.app.sessions.create(actorOf(ctx), input ?? {});
  }

  @Mutation(() => Session, { description: 'Ends the session now (TERMINATED); what it used stays counted.' })
  @RequireScope('sessions:write')
  terminateSession(@Arg('id', () => ID) id: string, @Ctx() ctx: Context) {
    return ctx.app.sessions.terminate(actorOf(ctx), id);
  }

  @Mutation(() => SessionBalance, { description: 'Payment hook: platform operators credit purchased sessions.' })
  @RequireScope('platform:admin')
  addSessionCredits(@Arg('input', () => AddSessionCreditsInput) input: AddSessionCreditsInput, @Ctx() ctx: Context) {
    return ctx.app.sessions.addCredits(actorOf(ctx), input);
  }

  @FieldResolver(() => SafeIntScalar)
  tokensRemaining(@Root() session: SessionEntity): number {
    return Math.max(0, session.tokenLimit - session.tokensUsed - session.tokensHeld);
  }
}
