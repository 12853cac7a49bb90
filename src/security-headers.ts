import type { NextFunction, Request, Response } from 'express';

/** A Host header that can go into a CSP source as it is: a name or address, and a port. */
const SAFE_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The Content-Security-Policy of keyward's own pages (GraphiQL and the console): everything
 * from this server and nothing from anywhere else. No inline script or style, no eval, no
 * frames, no forms posting elsewhere. Connections go back to the same origin over HTTP and
 * WebSocket: CSP Level 3 lets 'self' cover ws:/wss: on the same host (current Chromium does),
 * older browsers need the host spelled out, so the request's own host is added when it is a
 * plain host[:port].
 */
export function pageContentSecurityPolicy(host: string | undefined): string {
  const sockets = host && SAFE_HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    `connect-src 'self'${sockets}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Security headers of every page keyward serves; one function for GraphiQL and the console. */
export function pageSecurityHeaders(req: Request, res: Response, next?: NextFunction): void {
  res.setHeader('Content-Security-Policy', pageContentSecurityPolicy(req.headers.host));
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  next?.();
}
