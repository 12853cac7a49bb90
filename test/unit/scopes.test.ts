import {
  BUILT_IN_RESOURCES,
  holdsAll,
  holdsAny,
  holdsScope,
  isValidScope,
  normalizeScopes,
  PLATFORM_ADMIN,
  PRESET_SCOPES,
  ScopePreset,
  scopeCovers,
  scopesBeyond,
} from '../../src/auth/scopes';

describe('scopeCovers', () => {
  it('covers an equal scope', () => {
    expect(scopeCovers('keys:read', 'keys:read')).toBe(true);
    expect(scopeCovers('inference:run', 'inference:run')).toBe(true);
  });

  it('does not cover a different action of the same resource', () => {
    expect(scopeCovers('keys:read', 'keys:write')).toBe(false);
    expect(scopeCovers('keys:write', 'keys:read')).toBe(false);
  });

  it('does not cover the same action of another resource', () => {
    expect(scopeCovers('keys:read', 'org:read')).toBe(false);
  });

  it('lets * cover every scope, platform:admin and wildcards included', () => {
    for (const required of ['keys:read', 'platform:admin', 'inference:run', 'keys:*', '*']) {
      expect(scopeCovers('*', required)).toBe(true);
    }
  });

  it('lets res:* cover every action of that resource', () => {
    expect(scopeCovers('keys:*', 'keys:read')).toBe(true);
    expect(scopeCovers('keys:*', 'keys:write')).toBe(true);
    expect(scopeCovers('keys:*', 'keys:verify')).toBe(true);
    expect(scopeCovers('inference:*', 'inference:run')).toBe(true);
  });

  it('lets keys:* cover keys:* itself', () => {
    expect(scopeCovers('keys:*', 'keys:*')).toBe(true);
  });

  it('does not let res:* cover another resource, even one whose name starts the same', () => {
    expect(scopeCovers('keys:*', 'org:read')).toBe(false);
    expect(scopeCovers('keys:*', 'keysx:read')).toBe(false);
    expect(scopeCovers('keys:*', 'keysadmin:read')).toBe(false);
    expect(scopeCovers('key:*', 'keys:read')).toBe(false);
    expect(scopeCovers('org:*', 'organization:read')).toBe(false);
  });

  it('does not let res:* cover * or platform:admin', () => {
    expect(scopeCovers('keys:*', '*')).toBe(false);
    expect(scopeCovers('org:*', PLATFORM_ADMIN)).toBe(false);
    expect(scopeCovers('platform:*', PLATFORM_ADMIN)).toBe(true);
  });

  it('does not let a plain scope cover a wildcard', () => {
    expect(scopeCovers('keys:read', 'keys:*')).toBe(false);
    expect(scopeCovers('keys:read', '*')).toBe(false);
  });
});

describe('holdsScope / holdsAll / holdsAny (in a customer organization unless said otherwise)', () => {
  it('holdsScope is true when any held scope covers the required one', () => {
    expect(holdsScope(['org:read', 'keys:*'], 'keys:write', false)).toBe(true);
    expect(holdsScope(['org:read', 'keys:read'], 'keys:write', false)).toBe(false);
    expect(holdsScope([], 'keys:read', false)).toBe(false);
  });

  it('lets * in a customer organization cover every scope of that organization, platform-defined ones included', () => {
    for (const required of ['keys:write', 'org:write', 'inference:run', 'anything.custom:do', 'keys:*', '*']) {
      expect(holdsScope(['*'], required, false)).toBe(true);
    }
  });

  it('never lets a customer organization key reach a platform: scope, not even through * or platform:*', () => {
    expect(holdsScope(['*'], PLATFORM_ADMIN, false)).toBe(false);
    expect(holdsScope(['platform:*'], PLATFORM_ADMIN, false)).toBe(false);
    expect(holdsScope([PLATFORM_ADMIN], PLATFORM_ADMIN, false)).toBe(false);
    expect(holdsScope(['*'], 'platform:*', false)).toBe(false);
  });

  it('lets * and platform:* reach platform:admin in the platform organization', () => {
    expect(holdsScope(['*'], PLATFORM_ADMIN, true)).toBe(true);
    expect(holdsScope(['platform:*'], PLATFORM_ADMIN, true)).toBe(true);
    expect(holdsScope(['keys:*'], PLATFORM_ADMIN, true)).toBe(false);
  });

  it('holdsAll needs every required scope', () => {
    expect(holdsAll(['keys:read', 'inference:*'], ['keys:read', 'inference:run'], false)).toBe(true);
    expect(holdsAll(['keys:read'], ['keys:read', 'inference:run'], false)).toBe(false);
    expect(holdsAll(['*'], ['keys:read', 'platform:admin'], true)).toBe(true);
    expect(holdsAll(['*'], ['keys:read', 'platform:admin'], false)).toBe(false);
  });

  it('holdsAll is true for an empty requirement', () => {
    expect(holdsAll([], [], false)).toBe(true);
    expect(holdsAll(['keys:read'], [], false)).toBe(true);
  });

  it('holdsAny needs one of the listed scopes', () => {
    expect(holdsAny(['keys:read'], ['platform:admin', 'keys:read'], false)).toBe(true);
    expect(holdsAny(['keys:*'], ['platform:admin', 'keys:write'], false)).toBe(true);
    expect(holdsAny(['org:read'], ['platform:admin', 'keys:read'], false)).toBe(false);
    expect(holdsAny(['*'], ['platform:admin'], true)).toBe(true);
    expect(holdsAny(['*'], ['platform:admin'], false)).toBe(false);
  });

  it('holdsAny is false for an empty list of alternatives', () => {
    expect(holdsAny(['*'], [], true)).toBe(false);
  });
});

describe('scopesBeyond', () => {
  it('lists the granted scopes the holder does not cover, in the order given', () => {
    expect(scopesBeyond(['keys:*', 'org:read'], ['org:write', 'keys:write', 'platform:admin', 'org:read'], true)).toEqual(['org:write', 'platform:admin']);
  });

  it('is empty when everything granted is covered', () => {
    expect(scopesBeyond(['*'], ['platform:admin', 'keys:*', '*'], true)).toEqual([]);
    expect(scopesBeyond(['keys:*'], ['keys:read', 'keys:*'], false)).toEqual([]);
    expect(scopesBeyond(['keys:read'], [], false)).toEqual([]);
  });

  it('counts platform scopes as beyond every holder outside the platform organization', () => {
    expect(scopesBeyond(['*'], ['inference:run', '*', 'platform:admin'], false)).toEqual(['platform:admin']);
  });

  it('treats a wildcard grant as beyond a holder of only some of its actions', () => {
    expect(scopesBeyond(['keys:read', 'keys:write'], ['keys:*'], false)).toEqual(['keys:*']);
    expect(scopesBeyond(['keys:*', 'org:*'], ['*'], false)).toEqual(['*']);
  });
});

describe('isValidScope', () => {
  it.each(['*', 'keys:read', 'inference:run', 'keys:*', 'platform:admin', 'my_api.v2:run-fast'])('accepts %j', (scope) => {
    expect(isValidScope(scope)).toBe(true);
  });

  it.each(['Keys:read', 'keys:Read', 'keys', ':read', 'keys:', 'keys:read:x', '*:read', ' keys:read', 'keys:read ', '', '**', 'keys:**', 'keys :read', '1keys:read'])('rejects %j', (scope) => {
    expect(isValidScope(scope)).toBe(false);
  });
});

describe('PRESET_SCOPES', () => {
  it('READ is every :read scope of the built-in organization resources', () => {
    expect([...PRESET_SCOPES[ScopePreset.READ]].sort()).toEqual(['audit:read', 'keys:read', 'org:read', 'sessions:read', 'usage:read', 'webhooks:read']);
  });

  it('WRITE is READ plus the :write scopes', () => {
    expect([...PRESET_SCOPES[ScopePreset.WRITE]].sort()).toEqual([
      'audit:read', 'keys:read', 'keys:write', 'org:read', 'org:write', 'sessions:read', 'sessions:write', 'usage:read', 'usage:write',
      'webhooks:read', 'webhooks:write',
    ]);
  });

  it('ADMIN is * (everything within its own organization)', () => {
    expect([...PRESET_SCOPES[ScopePreset.ADMIN]]).toEqual(['*']);
  });

  it('INFERENCE is inference:* and usage:read', () => {
    expect([...PRESET_SCOPES[ScopePreset.INFERENCE]].sort()).toEqual(['inference:*', 'usage:read']);
  });

  it('has exactly the four presets READ, WRITE, ADMIN and INFERENCE', () => {
    expect(Object.keys(PRESET_SCOPES).sort()).toEqual(['ADMIN', 'INFERENCE', 'READ', 'WRITE']);
  });

  it.each(Object.values(ScopePreset))('never lets preset %s reach platform:admin in a customer organization, nor name a platform scope', (preset) => {
    const scopes = PRESET_SCOPES[preset];
    expect(holdsScope(scopes, PLATFORM_ADMIN, false)).toBe(false);
    expect(scopes.filter((scope) => scope.startsWith('platform:'))).toEqual([]);
  });

  it.each(Object.values(ScopePreset))('lists only valid, distinct scopes in preset %s', (preset) => {
    const scopes = PRESET_SCOPES[preset];
    expect(scopes.every(isValidScope)).toBe(true);
    expect(new Set(scopes).size).toBe(scopes.length);
  });

  it('names the built-in resources', () => {
    expect([...BUILT_IN_RESOURCES].sort()).toEqual(['audit', 'keys', 'org', 'platform', 'sessions', 'usage', 'webhooks']);
  });
});

describe('normalizeScopes', () => {
  it('sorts and removes duplicates', () => {
    expect(normalizeScopes(['org:read', 'keys:read', 'org:read', '*'])).toEqual(['*', 'keys:read', 'org:read']);
  });
});
