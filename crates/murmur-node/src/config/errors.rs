//! Configuration errors as a person reads them: one line, the key, where
//! the value came from.

/// figment's errors can chain several; the first, on one line, with its key
/// and its source, is what to fix.
pub(super) fn one_line(error: &figment::Error) -> String {
    let first = error
        .clone()
        .into_iter()
        .next()
        .unwrap_or_else(|| error.clone());
    let key = first.path.join(".").to_lowercase();
    let source = match &first.metadata {
        Some(m) if m.name.contains("environment") => {
            format!(
                "environment variable MURMUR_{}",
                first.path.join("__").to_uppercase()
            )
        }
        Some(m) => match &m.source {
            Some(source) => format!("{} {source}", m.name),
            None => m.name.to_string(),
        },
        None => "defaults".to_owned(),
    };
    let problem = first.kind.to_string().replace('\n', " ");
    if key.is_empty() {
        format!("invalid configuration (from {source}): {problem}")
    } else {
        format!("invalid value for `{key}` (from {source}): {problem}")
    }
}
