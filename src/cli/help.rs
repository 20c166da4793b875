//! The environment blocks of `--help`. Each command lists the variables it reads, nothing more,
//! laid out for the width clap writes the rest of the help at: a description that does not fit
//! goes on under itself (clap's own wrapping of free text would start it at the line's first
//! spaces, under the variable's name).

use clap::Command;

/// One variable (or a few that go together) and what it does.
struct Var {
    names: &'static str,
    help: &'static str,
}

const fn var(names: &'static str, help: &'static str) -> Var {
    Var { names, help }
}

/// The variables of `rushes serve`, in the order they are shown.
const SERVICE: &[Var] = &[
    var(
        "WEBHOOK_JSON_URL",
        "feed: http(s) URL, file:// URL or path (its query string is never logged); unset: \
         Frame.io-only mode",
    ),
    var(
        "WEBHOOK_CACHE_TTL",
        "seconds a successful fetch stays fresh, 0 = always fetch [300]",
    ),
    var("WEBHOOK_TIMEOUT", "seconds per feed request [30]"),
    var(
        "WEBHOOK_MONITOR_INTERVAL",
        "seconds between feed checks [15]",
    ),
    var(
        "FEED_TIMEZONE",
        "IANA zone of timestamps without offset (MySQL format) [UTC]",
    ),
    var(
        "RUSHES_BIND",
        "HTTP address: IP:PORT or localhost:PORT [127.0.0.1:5000]",
    ),
    var(
        "RUSHES_DATA_DIR",
        "folder of rushes.db (SQLite) and the instance lock [./data]",
    ),
    var(
        "RUSHES_DATABASE_URL",
        "postgres://user:pass@host:5432/db: several instances on one PostgreSQL (its password is \
         never shown) [none: SQLite in RUSHES_DATA_DIR]",
    ),
    var(
        "RUSHES_INSTANCE_NAME",
        "this instance's name on a shared database [host name + data folder hash]",
    ),
    var(
        "RUSHES_LEASE",
        "seconds a claim (feed poll, download, event) holds without renewal [30]",
    ),
    var(
        "LOCAL_DOWNLOADS_DIR",
        "folder downloads land in [./downloads]",
    ),
    var("RUSHES_LOG_DIR", "folder of app.log [./logs]"),
    var(
        "DOWNLOAD_CONCURRENCY",
        "downloads at once (at most 2 per host), 0 = paused [3]",
    ),
    var(
        "DRY_RUN_DOWNLOADS",
        "1 = record automatic deliveries as dry_run, fetch nothing [0]",
    ),
    var(
        "DOWNLOAD_MAX_AGE",
        "automatic records older than this when first seen are `available`, not downloaded \
         (7d, 36h, 0 = no limit) [7d]",
    ),
    var(
        "SWISSTRANSFER_AUTO",
        "1 = rushes fetches SwissTransfer links itself, 0 = a person does [1]",
    ),
    var(
        "SMASH_AUTO",
        "1 = rushes tries FromSmash links itself (experimental) [0]",
    ),
    var(
        "ON_DOWNLOAD_COMPLETE",
        "command run after each download, without a shell, in a clean environment (PATH, HOME, \
         LANG) with RUSHES_FILE, RUSHES_FILE_NAME, RUSHES_DELIVERY_ID, RUSHES_PROVIDER, \
         RUSHES_ORIGINAL_FILENAME set",
    ),
    var(
        "ON_DOWNLOAD_COMPLETE_ENV",
        "further variables the hook may see, comma-separated names",
    ),
    var(
        "NOTIFY_URL",
        "Slack-compatible incoming webhook: verdict changes, failed deliveries",
    ),
    var(
        "NOTIFY_ON_DOWNLOAD",
        "1 = also a message for each delivery downloaded [0]",
    ),
    var(
        "ON_REVIEW_CHANGE",
        "command run on each verdict change (RUSHES_UPLOAD_* set, clean environment like \
         ON_DOWNLOAD_COMPLETE); ON_REVIEW_CHANGE_ENV as above",
    ),
    var(
        "RUSHES_API_TOKEN",
        "protects the API and dashboard; required when RUSHES_BIND is not loopback",
    ),
    var(
        "RUSHES_TUNNEL",
        "none | ngrok | cloudflared: be reachable by Frame.io [none]",
    ),
    var(
        "RUSHES_PUBLIC_URL",
        "fixed public base URL (production, or a named cloudflared tunnel)",
    ),
    var(
        "NGROK_BIN, NGROK_AUTHTOKEN, NGROK_API_ADDR",
        "ngrok agent [ngrok; none; 127.0.0.1:4040]",
    ),
    var(
        "CLOUDFLARED_BIN, CLOUDFLARED_TUNNEL_TOKEN",
        "cloudflared [cloudflared; none = quick tunnel]",
    ),
    var(
        "RUSHES_ALLOWED_HOSTS",
        "host names served without a token besides loopback (comma-separated)",
    ),
    var(
        "WEBHOOK_AUTH_TOKEN",
        "sent as Authorization: Bearer to the feed (e.g. to rushes feed-proxy)",
    ),
    var("RUST_LOG", "log filter, e.g. info or rushes=debug [info]"),
];

const FRAMEIO: &[Var] = &[
    var("FRAMEIO_TOKEN", "bearer token used as is, or:"),
    var(
        "FRAMEIO_CLIENT_ID, FRAMEIO_CLIENT_SECRET [+ FRAMEIO_REFRESH_TOKEN]",
        "Adobe IMS credentials",
    ),
    var(
        "FRAMEIO_IMS_URL",
        "IMS token endpoint [https://ims-na1.adobelogin.com/ims/token/v3]",
    ),
    var("FRAMEIO_API_BASE", "API base [https://api.frame.io]"),
    var(
        "FRAMEIO_ACCOUNT_ID, FRAMEIO_WORKSPACE_ID",
        "where the webhook lives",
    ),
    var(
        "FRAMEIO_WEBHOOK_SECRET",
        "signing secret (else the one `webhook ensure` stored)",
    ),
    var("FRAMEIO_WEBHOOK_NAME", "webhook name [rushes]"),
    var(
        "FRAMEIO_POLL_INTERVAL",
        "seconds between polls of an unfinished upload [300]",
    ),
    var(
        "FRAMEIO_TIMEOUT",
        "seconds to wait for one answer of the Frame.io API [30]",
    ),
    var(
        "FRAMEIO_UPLOAD_FOLDER_ID",
        "Frame.io folder `frameio upload` and the watch folder send to",
    ),
    var(
        "FRAMEIO_UPLOAD_DIR",
        "watch folder of `serve`: files put there are sent to Frame.io",
    ),
    var(
        "FRAMEIO_UPLOAD_SETTLE",
        "quiet time before a watched file is sent (10s, 2m, 0) [10s]",
    ),
    var(
        "FRAMEIO_STATUS_MAP",
        "Status option -> state [In Progress=in_review,Needs Review=in_review,\
         Approved=approved,Rejected=rejected]",
    ),
    var(
        "FRAMEIO_REVIEW_LEXICON",
        "JSON lexicon extending the built-in comment cues (\"mode\": \"replace\" to replace \
         lists)",
    ),
    var(
        "FRAMEIO_KEYWORDS_APPROVED, FRAMEIO_KEYWORDS_CHANGES, FRAMEIO_KEYWORDS_REJECTED",
        "comma-separated phrases replacing the approval/change/rejection cues",
    ),
    var(
        "FRAMEIO_REVIEW_LLM_URL, FRAMEIO_REVIEW_LLM_MODEL [, FRAMEIO_REVIEW_LLM_KEY]",
        "optional second opinion on unsure comments (OpenAI-compatible chat completions) [off]",
    ),
    var(
        "RUSHES_TUNNEL, RUSHES_PUBLIC_URL, NGROK_*, CLOUDFLARED_*",
        "see `rushes serve --help`",
    ),
];

const PROXY: &[Var] = &[
    var(
        "FEED_PROXY_UPSTREAM",
        "the feed served (http or https; never shown to clients, never logged with its query \
         string) [required]",
    ),
    var(
        "FEED_PROXY_TOKENS_FILE",
        "one `name:token` a line (tokens of 16+ characters); re-read when it changes or on \
         SIGHUP [required]",
    ),
    var("FEED_PROXY_BIND", "address to listen on [127.0.0.1:5080]"),
    var(
        "FEED_PROXY_CACHE_TTL",
        "seconds an upstream answer is shared, 0 = ask upstream each time [10]",
    ),
    var(
        "FEED_PROXY_TIMEOUT",
        "seconds for the whole upstream request [30]",
    ),
    var("FEED_PROXY_MAX_BYTES", "largest upstream body [33554432]"),
    var(
        "FEED_PROXY_RATE_PER_TOKEN",
        "requests per minute per token [60]",
    ),
    var(
        "FEED_PROXY_RATE_PER_CLIENT",
        "requests per minute per client address [120]",
    ),
    var(
        "FEED_PROXY_CORS_ORIGINS",
        "origins allowed to read the feed from a browser (none by default)",
    ),
    var(
        "FEED_PROXY_AUDIT_LOG",
        "JSON-lines audit log [$RUSHES_LOG_DIR/feed-proxy-audit.jsonl]",
    ),
    var("RUSHES_LOG_DIR", "folder of app.log [./logs]"),
];

/// What `rushes status` and `rushes password` read.
const CLIENT: &[Var] = &[
    var(
        "RUSHES_BIND",
        "where the running rushes answers, unless --url is given [127.0.0.1:5000]",
    ),
    var(
        "RUSHES_API_TOKEN",
        "sent as Authorization: Bearer when the running rushes needs it",
    ),
];

const BACKUP: &[Var] = &[
    var("RUSHES_DATA_DIR", "folder of rushes.db (SQLite) [./data]"),
    var(
        "RUSHES_DATABASE_URL",
        "set: the database is PostgreSQL, use pg_dump instead",
    ),
];

/// What `rushes feed check` reads.
fn feed_check() -> Vec<&'static Var> {
    pick(&[
        "WEBHOOK_JSON_URL",
        "WEBHOOK_TIMEOUT",
        "WEBHOOK_AUTH_TOKEN",
        "FEED_TIMEZONE",
        "DOWNLOAD_MAX_AGE",
        "SWISSTRANSFER_AUTO",
        "SMASH_AUTO",
    ])
}

fn pick(names: &[&str]) -> Vec<&'static Var> {
    names
        .iter()
        .filter_map(|n| SERVICE.iter().find(|v| v.names == *n))
        .collect()
}

const MISTAKE: &str = "A configuration mistake names the variable and exits with code 2.";
const FLAGS_AND_MISTAKE: &str = "A flag wins over its variable. A configuration mistake names the \
                                 variable and exits with code 2.";

/// The command line with every environment block laid out for `width` columns (clap is told
/// the same width, so nothing of it is wrapped again).
pub fn command(cli: Command, width: usize) -> Command {
    let service = block(
        "Environment (also read from ./.env):",
        &SERVICE.iter().collect::<Vec<_>>(),
        width,
        FLAGS_AND_MISTAKE,
    );
    let client = block(
        "Environment (also read from ./.env):",
        &CLIENT.iter().collect::<Vec<_>>(),
        width,
        "",
    );
    let backup = block(
        "Environment (also read from ./.env):",
        &BACKUP.iter().collect::<Vec<_>>(),
        width,
        MISTAKE,
    );
    let check = block(
        "Environment (also read from ./.env):",
        &feed_check(),
        width,
        FLAGS_AND_MISTAKE,
    );
    let frameio = block(
        "Frame.io environment (all optional; also read from ./.env):",
        &FRAMEIO.iter().collect::<Vec<_>>(),
        width,
        "",
    );
    let proxy = block(
        "Environment (also read from ./.env):",
        &PROXY.iter().collect::<Vec<_>>(),
        width,
        &format!(
            "{}\n{MISTAKE}",
            wrap(
                "Clients send Authorization: Bearer <token> (rushes does when \
                 WEBHOOK_AUTH_TOKEN is set).",
                width,
                0
            )
            .join("\n")
        ),
    );
    cli.term_width(width)
        .after_help(service.clone())
        .mut_subcommand("serve", |c| c.after_help(service))
        .mut_subcommand("status", |c| c.after_help(client.clone()))
        .mut_subcommand("password", |c| c.after_help(client))
        .mut_subcommand("backup", |c| c.after_help(backup))
        .mut_subcommand("feed", |c| {
            c.mut_subcommand("check", |c| c.after_help(check))
        })
        .mut_subcommand("frameio", |c| c.after_help(frameio))
        .mut_subcommand("feed-proxy", |c| c.after_help(proxy))
}

/// The width clap would use: the terminal's (stdout, stderr or stdin), else `COLUMNS`, else 100.
pub fn terminal_width() -> usize {
    fn columns(fd: impl std::os::fd::AsFd) -> Option<usize> {
        if !rustix::termios::isatty(&fd) {
            return None;
        }
        let size = rustix::termios::tcgetwinsize(&fd).ok()?;
        Some(usize::from(size.ws_col)).filter(|w| *w > 0)
    }
    columns(std::io::stdout())
        .or_else(|| columns(std::io::stderr()))
        .or_else(|| columns(std::io::stdin()))
        .or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse().ok())
        })
        .unwrap_or(100)
}

/// A title, one entry per variable (name, then its description in a column; a description
/// that does not fit goes on in that column), then `footer`.
fn block(title: &str, vars: &[&Var], width: usize, footer: &str) -> String {
    const INDENT: usize = 2;
    const GAP: usize = 2;
    const NARROW: usize = 24;
    let longest = vars
        .iter()
        .map(|v| v.names.len())
        .filter(|n| *n <= 26)
        .max()
        .unwrap_or(0);
    let mut column = INDENT + longest + GAP;
    // Too narrow for a column: each description under its name.
    if width.saturating_sub(column) < NARROW {
        column = INDENT + 4;
    }
    let mut out = wrap(title, width, 0);
    for v in vars {
        let text = wrap(v.help, width.saturating_sub(column).max(NARROW), column);
        let names = format!("{}{}", " ".repeat(INDENT), v.names);
        let mut lines = text.into_iter();
        if names.len() + GAP <= column
            && let Some(first) = lines.next()
        {
            out.push(format!(
                "{names:<column$}{}",
                first.trim_start(),
                column = column
            ));
        } else {
            for line in wrap(v.names, width.saturating_sub(INDENT), INDENT) {
                out.push(line);
            }
        }
        out.extend(lines);
    }
    if !footer.is_empty() {
        out.push(String::new());
        for paragraph in footer.lines() {
            out.extend(wrap(paragraph, width, 0));
        }
    }
    out.join("\n")
}

/// `text` in lines of at most `width` characters, each indented by `indent` spaces. A word
/// longer than `width` stays whole on its own line.
fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(format!("{}{line}", " ".repeat(indent)));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(format!("{}{line}", " ".repeat(indent)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_go_on_in_their_column() {
        let text = block("Env:", &pick(&["DOWNLOAD_MAX_AGE", "RUSHES_BIND"]), 50, "");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() <= 50), "{text}");
        let column = lines[1].find("automatic").unwrap_or(0);
        assert!(column > 2, "{text}");
        // The continuation of DOWNLOAD_MAX_AGE starts exactly under its description.
        let next = lines[2];
        assert_eq!(next.len() - next.trim_start().len(), column, "{text}");
    }

    #[test]
    fn a_narrow_terminal_puts_descriptions_under_names() {
        let text = block("Env:", &pick(&["RUSHES_DATABASE_URL"]), 30, "");
        // A word longer than the line stays whole on a line of its own.
        assert!(
            text.lines()
                .all(|l| l.chars().count() <= 30 || l.split_whitespace().count() == 1),
            "{text}"
        );
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l.trim() == "RUSHES_DATABASE_URL")
        );
    }

    #[test]
    fn every_command_variable_is_described() {
        assert_eq!(feed_check().len(), 7);
    }
}
