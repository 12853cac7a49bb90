import { DateTimeResolver, JSONObjectResolver, SafeIntResolver } from 'graphql-scalars';

/** The contract's scalars: `DateTime` (ISO 8601, UTC), `JSONObject`, `SafeInt` (up to 2^53-1). */
export const DateTimeScalar = DateTimeResolver;
export const JSONObjectScalar = JSONObjectResolver;
export const SafeIntScalar = SafeIntResolver;
