import { Arg, Ctx, ID, Mutation, Resolver } from 'type-graphql';
import { UsageReservation } from './usage-reservation.type';
import { ReserveUsageInput, SettleUsageInput } from './usage-reservation.inputs';
import { UsageRecorded } from './usage.type';
import { RequireScope } from '../auth/directives';
import { actorOf, Context } from '../context';

@Resolver()
export class UsageReservationResolver {
  @Mutation(() => UsageReservation, {
    description: 'Verifies a key as verifyKey does and, in the same atomic step, holds estimated tokens / dollars against its TOKENS and COST_USD quotas, '
      + 'tokens-per-window limits and (requireSession) the active session; refused when any would go over counting what is already held. '
      + 'Settle with settleUsage once the model answered; idempotent per idempotencyKey for 24 h.',
  })
  @RequireScope('keys:verify')
  reserveUsage(@Arg('input', () => ReserveUsageInput) input: ReserveUsageInput, @Ctx() ctx: Context) {
    return ctx.app.reservations.reserve(actorOf(ctx), input);
  }

  @Mutation(() => UsageRecorded, {
    description: "Replaces a reservation's hold with the actual usage (more or less than held), charges the session and records the usage event; idempotent per reservation.",
  })
  @RequireScope('usage:write')
  settleUsage(@Arg('input', () => SettleUsageInput) input: SettleUsageInput, @Ctx() ctx: Context) {
    return ctx.app.reservations.settle(actorOf(ctx), input);
  }

  @Mutation(() => Boolean, { description: "Gives a reservation's hold back unsettled; false when nothing was held any more (settled, released or expired)." })
  @RequireScope('usage:write')
  releaseUsage(@Arg('reservationId', () => ID) reservationId: string, @Ctx() ctx: Context) {
    return ctx.app.reservations.release(actorOf(ctx), reservationId);
  }
}
