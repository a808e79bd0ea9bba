//! How the CLI writes: colour on a terminal, plain when piped (or `NO_COLOR`, or
//! `--color never`), the plan's marks (`+ ~ - ↻ !`) and the progress of an apply.

use std::io::IsTerminal;

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    Always,
    Never,
}

/// The terminal's styles, or none.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    /// The style for stdout under `choice`.
    pub fn for_stdout(choice: ColorChoice) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        };
        Style { color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn cyan(&self, text: &str) -> String {
        self.paint("36", text)
    }
}

/// Prints the library's events as progress lines on stderr: at `info` while applying
/// (each change with its before and after), only errors otherwise.
pub fn install_progress(verbose: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = if verbose {
        tracing::Level::INFO
    } else {
        tracing::Level::ERROR
    };
    let filter = tracing_subscriber::filter::Targets::new().with_target("signoz_control", level);
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(Progress, filter))
        .try_init();
}

/// One event, one line: `  <subject> <field>: <before> -> <after>` when it tells a
/// change, else `  <message> (k=v, ...)`.
struct Progress;

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.pairs.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Fields that name what an event is about, in order of preference.
const SUBJECTS: [&str; 7] = [
    "object", "workload", "secret", "resource", "signal", "policy", "bucket",
];

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Progress {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let subject = SUBJECTS.iter().find_map(|k| fields.get(k));
        let line = match (fields.get("before"), fields.get("after")) {
            (Some(before), Some(after)) => format!(
                "{}{}{}: {before} -> {after}",
                fields.message,
                subject.map(|s| format!(" {s}")).unwrap_or_default(),
                fields
                    .get("field")
                    .map(|f| format!(" {f}"))
                    .unwrap_or_default(),
            ),
            _ => {
                let rest: Vec<String> = fields
                    .pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if rest.is_empty() {
                    fields.message.clone()
                } else {
                    format!("{} ({})", fields.message, rest.join(", "))
                }
            }
        };
        let level = *event.metadata().level();
        let mark = if level <= tracing::Level::WARN {
            "!"
        } else {
            "·"
        };
        eprintln!("  {mark} {line}");
    }
}
