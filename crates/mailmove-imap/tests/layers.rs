//! The crate's layers, and a check that imports point down only.
//!
//! [`LAYERS`] is the one place the layering is written: a module may name (`use crate::x`, or a
//! path `crate::x::y` in code) modules of its own layer or of a layer below, never one above.
//! The test reads every file under `src/`, so a new module fails it until it is given a layer, and
//! an upward import fails it with the file, the line and both layers named.

use std::path::{Path, PathBuf};

/// The layers, lowest first, and the modules of each (a module path, matched by its longest
/// prefix: `protocol` covers `protocol::fetch`).
const LAYERS: &[(&str, &[&str])] = &[
    // What every layer may use: the protocol's vocabulary (capabilities, response codes, modified
    // UTF-7), which the transport needs too, and poison-tolerant locking.
    ("base", &["capability", "code", "utf7", "lock"]),
    // Bytes on the wire: configuration, TLS, compression, rate limits, the response grammar, one
    // connection and how it is opened, server answers as errors.
    (
        "transport",
        &[
            "config",
            "tls",
            "compress",
            "stream",
            "rate",
            "wire",
            "literal",
            "nul_bytes",
            "errors",
            "conn",
            "session",
        ],
    ),
    // One module per command family over one connection; NAMESPACE and folder-name mapping.
    ("protocol", &["protocol", "names", "bookkeeping"]),
    // The account's connections.
    ("pool", &["pool"]),
    // What the store knows about the account's mailboxes, with its rules.
    ("state", &["mailbox", "fingerprints"]),
    // The store and its operations: both trait sides, folders, APPEND lanes, the existing-message
    // index.
    (
        "store",
        &[
            "store",
            "source",
            "sink",
            "append",
            "existing",
            "identities",
            "late_arrivals",
            "folders",
            "stored",
            "copy_changes",
            "quota",
            "search",
        ],
    ),
];

/// Items re-exported at the crate root, by the module that defines them.
const ROOT_ITEMS: &[(&str, &str)] = &[
    ("ImapStore", "store"),
    ("ImapConfig", "config"),
    ("TlsMode", "config"),
    ("AuthMethod", "config"),
    ("StoreCheck", "config"),
    ("Headers8bit", "config"),
];

/// The layer of a module path (`protocol::fetch`), by its longest listed prefix.
fn layer_of(module: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (index, (_, modules)) in LAYERS.iter().enumerate() {
        for listed in *modules {
            let matches = module == *listed || module.starts_with(&format!("{listed}::"));
            if matches && best.is_none_or(|(length, _)| listed.len() > length) {
                best = Some((listed.len(), index));
            }
        }
    }
    best.map(|(_, index)| index)
}

/// The module path of a source file (`src/protocol/fetch.rs` → `protocol::fetch`); `None` for
/// the crate root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    if parts == ["lib"] {
        return None;
    }
    Some(parts.join("::"))
}

/// The modules `line` names through `crate::` paths (comments are not code).
fn named_modules(line: &str) -> Result<Vec<String>, String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code[..at].ends_with('$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if rest.starts_with('{') {
            return Err(
                "a grouped `use crate::{...}` (write one `use` per module, so that it can be checked)".into(),
            );
        }
        let path: String =
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let Some(first) = segments.first() else { continue };
        if first.starts_with(|c: char| c.is_ascii_uppercase()) {
            match ROOT_ITEMS.iter().find(|(item, _)| item == first) {
                Some((_, module)) => out.push(module.to_string()),
                None => return Err(format!("`crate::{first}` is not in ROOT_ITEMS")),
            }
            continue;
        }
        // The longest prefix that is a module: lower-case segments (types and functions end it).
        let module: Vec<&str> = segments
            .iter()
            .take_while(|s| s.starts_with(|c: char| c.is_ascii_lowercase()))
            .copied()
            .collect();
        out.push(module.join("::"));
    }
    Ok(out)
}

/// Every upward import in one file's text, as messages.
fn violations(module: &str, text: &str) -> Vec<String> {
    let Some(own) = layer_of(module) else {
        return vec![format!("the module `{module}` has no layer: add it to LAYERS in tests/layers.rs")];
    };
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let named = match named_modules(line) {
            Ok(named) => named,
            Err(problem) => {
                out.push(format!("{module}, line {}: {problem}", number + 1));
                continue;
            }
        };
        for target in named {
            match layer_of(&target) {
                None => out.push(format!(
                    "{module}, line {}: `crate::{target}` has no layer: add it to LAYERS in tests/layers.rs",
                    number + 1
                )),
                Some(layer) if layer > own => out.push(format!(
                    "{module} ({}) imports {target} ({}), a higher layer, at line {}: {}",
                    LAYERS[own].0,
                    LAYERS[layer].0,
                    number + 1,
                    line.trim()
                )),
                Some(_) => {}
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("read src entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn imports_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 10, "found only {files:?}");
    let mut problems = Vec::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else { continue };
        let text = std::fs::read_to_string(&file).expect("read source file");
        problems.extend(violations(&module, &text));
    }
    assert!(problems.is_empty(), "imports that do not point down:\n{}", problems.join("\n"));
}

#[test]
fn the_check_catches_an_upward_import() {
    assert_eq!(
        violations("conn", "use crate::wire::Value;\nuse crate::capability::Capability;\n"),
        Vec::<String>::new()
    );
    let found = violations("conn", "use crate::wire::Value;\nuse crate::store::Inner;\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("conn (transport) imports store (store)"), "{found:?}");
    // A path in code counts too; comments do not.
    assert_eq!(violations("protocol::fetch", "    let x = crate::pool::Pool::new();\n").len(), 1);
    assert_eq!(violations("protocol::fetch", "/// See [`crate::store`].\n// crate::store\n").len(), 0);
    assert_eq!(violations("mailbox", "fn f() -> crate::ImapStore {}\n").len(), 1);
    assert_eq!(violations("newthing", "").len(), 1, "a module without a layer");
    assert_eq!(layer_of("protocol::fetch"), layer_of("protocol"));
}
