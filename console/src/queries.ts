/** The GraphQL documents the console sends, and the shapes it reads back. */

export type VerifyCode = 'VALID' | 'NOT_FOUND' | 'DISABLED' | 'REVOKED' | 'EXPIRED' | 'ORGANIZATION_SUSPENDED' | 'FORBIDDEN_IP'
  | 'INSUFFICIENT_SCOPE' | 'RATE_LIMITED' | 'QUOTA_EXCEEDED' | 'NO_ACTIVE_SESSION';
export type ApiKeyStatus = 'ACTIVE' | 'DISABLED' | 'EXPIRED' | 'REVOKED';
export type Meter = 'REQUESTS' | 'TOKENS' | 'COST_USD';
export type QuotaPeriod = 'DAY' | 'MONTH' | 'LIFETIME';
export type ScopePreset = 'READ' | 'WRITE' | 'ADMIN' | 'INFERENCE';

export interface Quota {
  organizationId: string | null;
  apiKeyId: string | null;
  meter: Meter;
  period: QuotaPeriod;
  limit: number;
  used: number;
  /** Reserved by reserveUsage and not yet settled or released. */
  held: number;
  remaining: number;
  percentUsed: number;
  resetsAt: string | null;
}

export interface RateLimit { name: string; limit: number; windowSeconds: number }
export interface RateLimitState extends RateLimit { apiKeyId: string; remaining: number; resetAt: string }

export interface Organization {
  id: string;
  name: string;
  slug: string;
  status: 'ACTIVE' | 'SUSPENDED';
  isPlatform: boolean;
  maxKeys: number;
  sessionBalance: number;
  createdAt: string;
  quotas: Quota[];
}

export interface ApiKey {
  id: string;
  organizationId: string;
  name: string;
  environment: 'LIVE' | 'TEST';
  hint: string;
  status: ApiKeyStatus;
  scopes: string[];
  ipAllowlist: string[];
  rateLimits: RateLimit[];
  quotas: Quota[];
  maxCostPerRequest: number | null;
  ownerEmail: string | null;
  externalId: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  revokedReason: string | null;
  rotatedFromId: string | null;
  lastUsedAt: string | null;
  requestCount: number;
  createdAt: string;
}

export interface Session {
  id: string;
  organizationId: string;
  apiKeyId: string;
  status: 'ACTIVE' | 'EXHAUSTED' | 'EXPIRED' | 'TERMINATED';
  tokenLimit: number;
  tokensUsed: number;
  tokensRemaining: number;
  requestCount: number;
  priceUsd: number;
  startedAt: string;
  expiresAt: string;
  endedAt: string | null;
}

export interface UsageBucket { key: string; requests: number; errors: number; tokens: number; costUsd: number; avgLatencyMs: number | null }
export interface OutcomeCount { code: VerifyCode; count: number }
export interface UsageSummary {
  from: string;
  to: string;
  requests: number;
  errors: number;
  tokens: number;
  costUsd: number;
  avgLatencyMs: number | null;
  byOperation: UsageBucket[];
  byApiKey: UsageBucket[];
  byDay: UsageBucket[];
  byHour: UsageBucket[];
  byOutcome: OutcomeCount[];
}

export interface AuditEntry {
  id: string;
  organizationId: string | null;
  actorKeyId: string | null;
  action: string;
  targetType: string;
  targetId: string | null;
  ip: string | null;
  metadata: Record<string, unknown> | null;
  at: string;
}

export type WebhookEventType = 'QUOTA_THRESHOLD' | 'QUOTA_EXHAUSTED' | 'RATE_LIMIT_EXHAUSTED' | 'SESSION_EXHAUSTED' | 'KEY_EXPIRING'
  | 'KEY_REVOKED' | 'KEY_ROTATED' | 'TEST';
export type WebhookDeliveryStatus = 'PENDING' | 'SUCCEEDED' | 'FAILED';

export interface WebhookEndpoint {
  id: string;
  organizationId: string;
  url: string;
  description: string | null;
  eventTypes: WebhookEventType[];
  quotaThresholds: number[];
  expiryNoticeDays: number;
  enabled: boolean;
  createdAt: string;
}

export interface WebhookDelivery {
  id: string;
  endpointId: string;
  eventId: string;
  eventType: WebhookEventType;
  status: WebhookDeliveryStatus;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
  payload: Record<string, unknown>;
  createdAt: string;
}

export interface Page<T> { nodes: T[]; pageInfo: { endCursor: string | null; hasNextPage: boolean }; totalCount: number }

const QUOTA = 'organizationId apiKeyId meter period limit used held remaining percentUsed resetsAt';
const ORGANIZATION = `id name slug status isPlatform maxKeys sessionBalance createdAt quotas { ${QUOTA} }`;
const KEY = `id organizationId name environment hint status scopes ipAllowlist rateLimits { name limit windowSeconds } quotas { ${QUOTA} }
  maxCostPerRequest ownerEmail externalId expiresAt revokedAt revokedReason rotatedFromId lastUsedAt requestCount createdAt`;
const SESSION = 'id organizationId apiKeyId status tokenLimit tokensUsed tokensRemaining requestCount priceUsd startedAt expiresAt endedAt';
const BUCKET = 'key requests errors tokens costUsd avgLatencyMs';
const RATE_LIMIT_STATE = 'apiKeyId name limit remaining windowSeconds resetAt';

export const VIEWER = `query ConsoleViewer { viewer { scopes isPlatformAdmin apiKey { id name hint } organization { ${ORGANIZATION} } } }`;
export const ORGANIZATIONS = `query ConsoleOrganizations($after: String) { organizations(first: 100, after: $after) { nodes { ${ORGANIZATION} } pageInfo { endCursor hasNextPage } totalCount } }`;
export const ORGANIZATION_QUERY = `query ConsoleOrganization($id: ID) { organization(id: $id) { ${ORGANIZATION} } }`;
export const CREATE_ORGANIZATION = `mutation ConsoleCreateOrganization($input: CreateOrganizationInput!) { createOrganization(input: $input) { ${ORGANIZATION} } }`;
export const UPDATE_ORGANIZATION = `mutation ConsoleUpdateOrganization($id: ID!, $input: UpdateOrganizationInput!) { updateOrganization(id: $id, input: $input) { ${ORGANIZATION} } }`;
export const SET_ORGANIZATION_STATUS = `mutation ConsoleSetOrganizationStatus($id: ID!, $status: OrganizationStatus!) { setOrganizationStatus(id: $id, status: $status) { ${ORGANIZATION} } }`;

export const API_KEYS = `query ConsoleApiKeys($filter: ApiKeyFilter, $first: Int, $after: String) { apiKeys(filter: $filter, first: $first, after: $after) { nodes { ${KEY} } pageInfo { endCursor hasNextPage } totalCount } }`;
export const CREATE_API_KEY = `mutation ConsoleCreateApiKey($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY} } } }`;
export const UPDATE_API_KEY = `mutation ConsoleUpdateApiKey($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { ${KEY} } }`;
export const SET_API_KEY_ENABLED = `mutation ConsoleSetApiKeyEnabled($id: ID!, $enabled: Boolean!) { setApiKeyEnabled(id: $id, enabled: $enabled) { ${KEY} } }`;
export const REVOKE_API_KEY = `mutation ConsoleRevokeApiKey($id: ID!, $reason: String!) { revokeApiKey(id: $id, reason: $reason) { ${KEY} } }`;
export const ROTATE_API_KEY = `mutation ConsoleRotateApiKey($id: ID!, $gracePeriodSeconds: Int) { rotateApiKey(id: $id, gracePeriodSeconds: $gracePeriodSeconds) { secret previousKeyExpiresAt apiKey { ${KEY} } } }`;
export const RATE_LIMIT_STATUS = `query ConsoleRateLimitStatus($apiKeyId: ID!) { rateLimitStatus(apiKeyId: $apiKeyId) { ${RATE_LIMIT_STATE} } }`;

export const USAGE = `query ConsoleUsage($range: UsageRange) { usage(range: $range) {
  from to requests errors tokens costUsd avgLatencyMs
  byOperation { ${BUCKET} } byApiKey { ${BUCKET} } byDay { ${BUCKET} } byHour { ${BUCKET} } byOutcome { code count } } }`;

/** Outcomes of several consecutive ranges in one request (aliases s0…sN; at most 12). */
export function outcomesOverTime(slices: number): string {
  const fields = Array.from({ length: slices }, (_, i) => `s${i}: usage(range: { organizationId: $organizationId, apiKeyId: $apiKeyId, from: $from${i}, to: $to${i} }) { byOutcome { code count } }`);
  const variables = Array.from({ length: slices }, (_, i) => `$from${i}: DateTime!, $to${i}: DateTime!`);
  return `query ConsoleOutcomes($organizationId: ID, $apiKeyId: ID, ${variables.join(', ')}) { ${fields.join(' ')} }`;
}

export const SESSIONS = `query ConsoleSessions { sessions(first: 20) { nodes { ${SESSION} } totalCount } currentSession { ${SESSION} } }`;
export const SESSION_BALANCE = 'query ConsoleSessionBalance($organizationId: ID) { sessionBalance(organizationId: $organizationId) { organizationId available purchased used } }';
export const ADD_SESSION_CREDITS = 'mutation ConsoleAddSessionCredits($input: AddSessionCreditsInput!) { addSessionCredits(input: $input) { organizationId available purchased used } }';

export const AUDIT_LOG = 'query ConsoleAuditLog($organizationId: ID, $after: String) { auditLog(organizationId: $organizationId, first: 50, after: $after) { nodes { id organizationId actorKeyId action targetType targetId ip metadata at } pageInfo { endCursor hasNextPage } totalCount } }';

export const QUOTA_CHANGED = `subscription ConsoleQuotaChanged($organizationId: ID) { quotaChanged(organizationId: $organizationId) { ${QUOTA} } }`;
export const RATE_LIMIT_CHANGED = `subscription ConsoleRateLimitChanged($apiKeyId: ID!) { rateLimitChanged(apiKeyId: $apiKeyId) { ${RATE_LIMIT_STATE} } }`;
export const SESSION_CHANGED = `subscription ConsoleSessionChanged($organizationId: ID) { sessionChanged(organizationId: $organizationId) { ${SESSION} } }`;
export const API_KEY_CHANGED = `subscription ConsoleApiKeyChanged($organizationId: ID) { apiKeyChanged(organizationId: $organizationId) { type at apiKey { ${KEY} } } }`;

const WEBHOOK_ENDPOINT = 'id organizationId url description eventTypes quotaThresholds expiryNoticeDays enabled createdAt';
const WEBHOOK_DELIVERY = 'id endpointId eventId eventType status attempts lastStatusCode lastError nextAttemptAt deliveredAt payload createdAt';
export const WEBHOOK_ENDPOINTS = `query ConsoleWebhookEndpoints($organizationId: ID) { webhookEndpoints(organizationId: $organizationId) { ${WEBHOOK_ENDPOINT} } }`;
export const WEBHOOK_DELIVERIES = `query ConsoleWebhookDeliveries($endpointId: ID!, $status: WebhookDeliveryStatus, $after: String) { webhookDeliveries(endpointId: $endpointId, status: $status, first: 20, after: $after) { nodes { ${WEBHOOK_DELIVERY} } pageInfo { endCursor hasNextPage } totalCount } }`;
export const CREATE_WEBHOOK_ENDPOINT = `mutation ConsoleCreateWebhookEndpoint($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { ${WEBHOOK_ENDPOINT} } } }`;
export const UPDATE_WEBHOOK_ENDPOINT = `mutation ConsoleUpdateWebhookEndpoint($id: ID!, $input: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(id: $id, input: $input) { ${WEBHOOK_ENDPOINT} } }`;
export const DELETE_WEBHOOK_ENDPOINT = 'mutation ConsoleDeleteWebhookEndpoint($id: ID!) { deleteWebhookEndpoint(id: $id) }';
export const ROTATE_WEBHOOK_SECRET = `mutation ConsoleRotateWebhookSecret($id: ID!) { rotateWebhookSecret(id: $id) { secret endpoint { ${WEBHOOK_ENDPOINT} } } }`;
export const SEND_TEST_WEBHOOK = `mutation ConsoleSendTestWebhook($id: ID!) { sendTestWebhook(id: $id) { ${WEBHOOK_DELIVERY} } }`;
export const RETRY_WEBHOOK_DELIVERY = `mutation ConsoleRetryWebhookDelivery($id: ID!) { retryWebhookDelivery(id: $id) { ${WEBHOOK_DELIVERY} } }`;
