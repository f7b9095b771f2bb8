/**
 * A scheme's letters and what may stand before them in a run (`1http://` is the scheme `http` after a
 * `1`), then `://`, the user (no `/ ? # @ : "` or space), `:`, the password, `@`. Tried only where such a
 * run starts (the look-behind), so a long run of letters costs one pass, not one per letter: the plain
 * `[a-z][a-z0-9+.-]*:\/\/…` took minutes over a 100 KB URL.
 */
const USER_INFO = /(?<![a-z0-9+.-])([a-z0-9+.-]+:\/\/[^/?#@:\s"]*):[^/?#@\s"]*@/gi;

/**
 * `text` with the password of every URL's `user:pass@` in it hidden (`user:***@`): what the CLIs report
 * (stderr, `--json`, result records) ends up in logs. Any scheme, in any case. (A parsed URL's user info
 * holds no `/ ? # @ : "` or space.)
 */
export function hidePasswords(text: string): string {
  return text.replace(USER_INFO, (match, head: string) => {
    // a scheme starts with a letter: a run of digits, `+`, `.` or `-` before `://` is no URL
    const letter = head.search(/[a-z]/i);
    return letter >= 0 && letter < head.indexOf('://') ? `${head}:***@` : match;
  });
}
