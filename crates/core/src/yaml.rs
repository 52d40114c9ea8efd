//! YAML in and out, for every crate of the project, through serde-saphyr (pure Rust, kept up,
//! parsing under a budget). What it is fed is a pull request's, a user's or a compose file's
//! text, so reading is bounded here, once: at most [`MAX_INPUT_BYTES`], nesting at most
//! [`MAX_DEPTH`] deep, and node, document and alias counts that no input of that size needs
//! more of. Past a budget the answer is an error, found in time linear in the input (the old
//! libyaml-based parser took over 20 s on 200 KB of `[[[[...]]]]`; see `tests` below for what
//! this one takes).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The most bytes one run reads, over all its files: 4 MiB, about 18,000 CatalystVMs, read and
/// validated in about 0.3 s on one core.
pub const MAX_INPUT_BYTES: u64 = 4 << 20;

/// The deepest nesting of collections (block or flow) a document may have. Catalyst's kinds
/// nest about 18 deep, KubeVirt's VirtualMachine CRD 29; the parser recurses once per level, and
/// 64 levels fit the 2 MiB stack of a test or tokio thread even in a debug build.
pub const MAX_DEPTH: usize = 64;

pub use serde_saphyr::Error;

/// A YAML value that will not serialize (a map with non-string keys, say).
pub type WriteError = serde_saphyr::SerializeError;

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.flow_nesting_limit = MAX_DEPTH;
    // Every node takes at least two bytes of input; a layout is a document per object.
    budget.max_nodes = (MAX_INPUT_BYTES / 2) as usize;
    budget.max_events = (MAX_INPUT_BYTES * 2) as usize;
    budget.max_documents = 100_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // Plain scalars read as YAML 1.2's core schema reads them, as the parser before this one did
    // (and compose-go's go-yaml v3 does): `yes`, `on` and `n` are strings, not booleans;
    // `0755` and `1_000` are strings, not numbers.
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    options
}

/// One document (refused past [`MAX_INPUT_BYTES`] before it is parsed).
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    within_size(text.len())?;
    serde_saphyr::from_str_with_options(text, options())
}

/// One document, from bytes.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    within_size(bytes.len())?;
    serde_saphyr::from_slice_with_options(bytes, options())
}

/// Every document of a multi-document text, empty ones included as `null`.
pub fn from_multiple<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, Error> {
    within_size(text.len())?;
    serde_saphyr::from_multiple_with_options(text, options())
}

fn within_size(len: usize) -> Result<(), Error> {
    if len as u64 > MAX_INPUT_BYTES {
        let message = format!("{len} bytes is more than the {MAX_INPUT_BYTES} bytes a run reads");
        return Err(<Error as serde::de::Error>::custom(message));
    }
    Ok(())
}

/// An error in one line for a person: where (line and column) and what, with what a budget
/// means when one was passed.
pub fn describe(error: &Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
    if first.contains("recursion limit") || first.contains("Depth") {
        format!("{first} (nested deeper than {MAX_DEPTH} levels)")
    } else if first.contains("budget breached") {
        format!("{first} (more than this project reads in one run)")
    } else {
        first.to_string()
    }
}

/// `value` as YAML: strings of several lines as literal blocks (`|`), single lines as they
/// are, however long (a URL or a description stays one line, as kubectl prints it).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, WriteError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = 1 << 20;
    serde_saphyr::to_string_with_options(value, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn hostile_nesting_is_refused_where_it_passes_the_limit() {
        let fine = format!("a: {}{}\n", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        assert!(from_str::<Value>(&fine).is_ok());
        for hostile in [
            format!("a: {}", "[".repeat(4 << 19)),
            "{a: ".repeat(1_000_000),
            (0..2_000).map(|i| format!("{}a:\n", " ".repeat(i))).collect::<String>(),
        ] {
            let error = from_str::<Value>(&hostile).unwrap_err().to_string();
            assert!(error.contains("recursion limit") || error.contains("Depth"), "{error}");
        }
    }

    #[test]
    fn brackets_in_scalars_do_not_count() {
        let deep = "[".repeat(1000);
        for text in [format!("a: \"{deep}\"\n"), format!("a: '{deep}'\n"), format!("image: repo{deep}\n")] {
            assert!(from_str::<Value>(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn too_much_input_and_alias_bombs_are_refused() {
        let big = "a: b\n".repeat((MAX_INPUT_BYTES / 5 + 1) as usize);
        assert!(from_str::<Value>(&big).unwrap_err().to_string().contains("bytes a run reads"));
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for c in b'b'..=b'z' {
            let previous = (c - 1) as char;
            bomb += &format!("{}: &{} [{}]\n", c as char, c as char, vec![format!("*{previous}"); 10].join(", "));
        }
        assert!(from_str::<Value>(&bomb).is_err());
    }

    #[test]
    fn plain_scalars_read_as_yaml_1_2_core() {
        let value: Value = from_str("a: yes\nb: n\nc: on\nd: 0755\ne: 1_000\nf: true\ng: 12\n").unwrap();
        let want = serde_json::json!({"a": "yes", "b": "n", "c": "on", "d": "0755", "e": "1_000", "f": true, "g": 12});
        assert_eq!(value, want);
    }

    #[test]
    fn documents_merge_keys_and_a_round_trip() {
        let docs: Vec<Value> = from_multiple("a: 1\n---\nbase: &b {k: v}\nm: {<<: *b, z: 3}\n---\n").unwrap();
        assert_eq!(docs[0]["a"], 1);
        assert_eq!(docs[1]["m"], serde_json::json!({"k": "v", "z": 3}));
        let value = serde_json::json!({"n": "08", "y": "yes", "t": "~", "e": "", "s": "two\nlines", "i": 8});
        assert_eq!(from_str::<Value>(&to_string(&value).unwrap()).unwrap(), value);
    }
}
