/**
 * The token: pasted into the sign-in form or handed over in the URL fragment
 * (`#token=...`, which `scripts/issue_token.py --url` prints). A fragment never reaches the
 * server; it is taken out of the address bar and the history at once, and the token lives in
 * sessionStorage only: it goes when the tab closes.
 */

const TOKEN_KEY = 'alertwire.token';
const HOSPITAL_KEY = 'alertwire.hospital';

export function takeTokenFromFragment(): void {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token === null) return;
  history.replaceState(null, '', location.pathname + location.search);
  if (token.trim() !== '') saveToken(token);
}

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
}

export function forget(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(HOSPITAL_KEY);
}

export function savedHospital(): string | null {
  return sessionStorage.getItem(HOSPITAL_KEY);
}

export function saveHospital(hospitalId: string): void {
  sessionStorage.setItem(HOSPITAL_KEY, hospitalId);
}
