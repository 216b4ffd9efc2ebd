//! The layering of ARCHITECTURE.md, checked. Each file of `src/` is parsed with `syn`, every
//! path it names (in `use` items, in code, and in the tokens of macro calls) is resolved the
//! way rustc resolves it (`crate::`, `self::`, `super::`, a module declared with `mod`, a name
//! brought in by `use`, through the re-exports of a `mod.rs`), and from those:
//!
//! - each layer uses only the layers below it, and the leaves; nothing uses what the crate
//!   root (lib.rs) defines, because the root re-exports the app;
//! - main.rs goes through `app` only;
//! - the HTTP crates appear only in http/ and app/, and no HTTP status appears below them;
//! - `super::` stays within its folder;
//! - the files (and sub-folders) beside each folder's `mod.rs` use each other without a cycle
//!   (a re-export is not a use: a path through one counts where the thing is defined).
//!
//! The first tests read `src/`; the last ones feed the reading small sources, to show what it
//! sees and what it is not fooled by.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// The layers, each with the layers it may use besides itself and the leaves: the picture in
/// ARCHITECTURE.md.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "app",
        &["http", "gateway", "agent", "cli", "store", "process"],
    ),
    // The CLIs' gateway to the API: it implements the core's Gateway trait, and reads the
    // CLI's contract (the variables that hold the operator's credential, its stored login).
    ("gateway", &["agent", "cli"]),
    // The compatible routes read the CLI's stream events through cli.
    ("http", &["agent", "cli"]),
    // The store's backends implement the core's traits; only the app picks one.
    ("store", &["agent"]),
    ("agent", &["cli", "process"]),
    // The CLI's contract: its arguments, stdin and stdout lines, environment, home, login.
    ("cli", &["process"]),
    ("process", &[]),
];

/// Leaf modules (a file of their own under `src/`) that any layer may use, and that use no
/// other module of the crate.
const LEAVES: &[&str] = &["metrics", "telemetry", "sync", "literal"];

/// The layers that may name the HTTP crates: the edge, the gateway (an HTTP server and client
/// of its own), and the app that builds them.
const HTTP_LAYERS: &[&str] = &["app", "http", "gateway"];

/// Crates only the HTTP edge (and the app that builds it) may name.
const HTTP_CRATES: &[&str] = &[
    "axum",
    "hyper",
    "hyper_util",
    "tower",
    "tower_http",
    "http",
    "http_body",
    "reqwest",
];

/// The library's crate, as a key of [`Model::files`]; a binary is `bin:NAME`.
const LIB: &str = "lib";

// ---------------------------------------------------------------------------------------------
// The model: each file's module, the names each module declares, and the paths each file names.

/// One file of `src/`.
struct SourceFile {
    /// Relative to `src/`: `agent/table.rs`.
    name: String,
    /// [`LIB`], or `bin:NAME` for a binary's root.
    krate: String,
    /// Its module path in its crate: `src/agent/table.rs` is `[agent, table]`, a `mod.rs` is
    /// its folder's, a crate root is `[]`.
    module: Vec<String>,
    /// Every path it names, in the order written.
    refs: Vec<Reference>,
}

impl SourceFile {
    fn is_folder_root(&self) -> bool {
        self.name.ends_with("mod.rs") || self.name == "lib.rs"
    }

    /// The folder the file is in, as a module path.
    fn folder(&self) -> &[String] {
        if self.is_folder_root() {
            &self.module
        } else {
            &self.module[..self.module.len() - 1]
        }
    }

    /// Its layer: the first segment of its module, or `lib.rs` for the crate root; `None` for
    /// a binary.
    fn layer(&self) -> Option<&str> {
        if self.krate != LIB {
            return None;
        }
        Some(self.module.first().map_or("lib.rs", String::as_str))
    }
}

/// One path a file names.
#[derive(Debug, Clone)]
struct Reference {
    line: usize,
    /// The module (inline modules included) it is named in.
    scope: Vec<String>,
    /// As written: `super::journal::Journal`.
    segments: Vec<String>,
    /// A single name in code (`Journal`): only a name brought in by `use` resolves.
    single: bool,
    /// In a `pub use`: a re-export, which makes the path part of this module's face rather
    /// than something its code uses.
    reexport: bool,
}

impl Reference {
    fn written(&self) -> String {
        self.segments.join("::")
    }
}

/// What a module declares.
#[derive(Default, Debug)]
struct Scope {
    /// Modules declared with `mod`.
    mods: BTreeSet<String>,
    /// Those of them with their body here.
    inline: BTreeSet<String>,
    /// Names brought in by `use` (re-exports too), to the path as written.
    aliases: BTreeMap<String, Vec<String>>,
    /// `use PATH::*`, as written.
    globs: Vec<Vec<String>>,
    /// Items defined here (types, functions, constants, traits, macros).
    items: BTreeSet<String>,
}

/// Where a path leads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A path in one of our crates ([`LIB`] or `bin:NAME`).
    Local(String, Vec<String>),
    /// A path in another crate, its first segment the crate's name.
    Extern(Vec<String>),
    /// A local variable, a generic, `Self`, an item of the file itself.
    Unknown,
}

struct Model {
    files: Vec<SourceFile>,
    scopes: BTreeMap<(String, Vec<String>), Scope>,
}

impl Model {
    /// Reads `src/`.
    fn of_src() -> Model {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        paths.sort();
        let sources: Vec<(String, String)> = paths
            .iter()
            .map(|path| {
                let name = path.strip_prefix(&src).unwrap().to_str().unwrap();
                (
                    name.replace('\\', "/"),
                    std::fs::read_to_string(path).unwrap(),
                )
            })
            .collect();
        let borrowed: Vec<(&str, &str)> = sources
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Model::new(&borrowed)
    }

    /// The model of the given files (`name` relative to `src/`, `text` its source).
    fn new(sources: &[(&str, &str)]) -> Model {
        let mut model = Model {
            files: Vec::new(),
            scopes: BTreeMap::new(),
        };
        for (name, text) in sources {
            let file = syn::parse_file(text)
                .unwrap_or_else(|err| panic!("src/{name} does not parse: {err}"));
            let (krate, module) = module_of(name);
            let mut scopes = ScopeReader {
                krate: &krate,
                stack: module.clone(),
                scopes: &mut model.scopes,
            };
            scopes
                .scopes
                .entry((krate.clone(), module.clone()))
                .or_default();
            scopes.visit_file(&file);
            let mut refs = RefReader {
                stack: module.clone(),
                refs: Vec::new(),
                reexport: false,
            };
            refs.visit_file(&file);
            model.files.push(SourceFile {
                name: (*name).to_owned(),
                krate,
                module,
                refs: refs.refs,
            });
        }
        model
    }

    fn scope(&self, krate: &str, module: &[String]) -> Option<&Scope> {
        self.scopes.get(&(krate.to_owned(), module.to_vec()))
    }

    /// Where `segments`, written in module `scope` of `krate`, leads: the path as rustc reads
    /// it, before any re-export is followed.
    fn resolve(&self, krate: &str, scope: &[String], segments: &[String], single: bool) -> Target {
        self.resolve_in(krate, scope, segments, single, 0)
    }

    fn resolve_in(
        &self,
        krate: &str,
        scope: &[String],
        segments: &[String],
        single: bool,
        depth: usize,
    ) -> Target {
        let Some(first) = segments.first() else {
            return Target::Unknown;
        };
        if depth > 32 {
            return Target::Unknown;
        }
        let rest = &segments[1..];
        let local = |module: &[String], rest: &[String]| {
            Target::Local(krate.to_owned(), [module, rest].concat())
        };
        match first.as_str() {
            "crate" => local(&[], rest),
            "self" => local(scope, rest),
            "super" => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                if ups > scope.len() {
                    return Target::Unknown;
                }
                local(&scope[..scope.len() - ups], &segments[ups..])
            }
            "claude_proxy" if krate != LIB => Target::Local(LIB.to_owned(), rest.to_vec()),
            name => {
                let Some(here) = self.scope(krate, scope) else {
                    return Target::Unknown;
                };
                if !single && here.mods.contains(name) {
                    return local(scope, segments);
                }
                if let Some(alias) = here.aliases.get(name) {
                    let path = [alias.as_slice(), rest].concat();
                    return self.resolve_in(krate, scope, &path, false, depth + 1);
                }
                if here.items.contains(name) {
                    return local(scope, segments);
                }
                for glob in &here.globs {
                    if let Target::Local(k, module) =
                        self.resolve_in(krate, scope, glob, false, depth + 1)
                        && let Some(there) = self.scope(&k, &module)
                        && (there.aliases.contains_key(name)
                            || there.items.contains(name)
                            || there.mods.contains(name))
                    {
                        return self.resolve_in(&k, &module, segments, single, depth + 1);
                    }
                }
                if single {
                    Target::Unknown
                } else {
                    Target::Extern(segments.to_vec())
                }
            }
        }
    }

    /// Follows the re-exports of a local path (`crate::agent::Error`, which agent/mod.rs
    /// re-exports from `error`, is `crate::agent::error::Error`), while `go_on(path)` holds.
    fn follow(
        &self,
        krate: &str,
        path: &[String],
        go_on: &dyn Fn(&[String]) -> bool,
    ) -> (String, Vec<String>) {
        let (mut krate, mut path) = (krate.to_owned(), path.to_vec());
        for _ in 0..32 {
            if !go_on(&path) {
                break;
            }
            let Some(n) = (0..=path.len())
                .rev()
                .find(|n| self.scope(&krate, &path[..*n]).is_some())
            else {
                break;
            };
            if n == path.len() {
                break;
            }
            let here = self.scope(&krate, &path[..n]).unwrap();
            let name = &path[n];
            let next = if let Some(alias) = here.aliases.get(name) {
                let written = [alias.as_slice(), &path[n + 1..]].concat();
                self.resolve(&krate, &path[..n], &written, false)
            } else if here.items.contains(name) {
                break;
            } else {
                // Through a glob re-export, if one of them has the name.
                here.globs
                    .iter()
                    .map(|glob| self.resolve(&krate, &path[..n], glob, false))
                    .find_map(|t| match t {
                        Target::Local(k, m)
                            if self.scope(&k, &m).is_some_and(|s| {
                                s.items.contains(name) || s.aliases.contains_key(name)
                            }) =>
                        {
                            Some(Target::Local(k, [m.as_slice(), &path[n..]].concat()))
                        }
                        _ => None,
                    })
                    .unwrap_or(Target::Unknown)
            };
            match next {
                Target::Local(k, p) if (k.clone(), p.clone()) != (krate.clone(), path.clone()) => {
                    (krate, path) = (k, p);
                }
                _ => break,
            }
        }
        (krate, path)
    }

    /// The file a local path is in: the longest prefix of it that is a file's module.
    fn file_of(&self, krate: &str, path: &[String]) -> Option<usize> {
        (0..=path.len()).rev().find_map(|n| {
            self.files
                .iter()
                .position(|f| f.krate == krate && f.module == path[..n])
        })
    }

    /// Each reference of file `index` into the library, with the file it ends in once every
    /// re-export is followed.
    fn local_uses(&self, index: usize) -> Vec<(Reference, Vec<String>, usize)> {
        let file = &self.files[index];
        file.refs
            .iter()
            .filter_map(
                |r| match self.resolve(&file.krate, &r.scope, &r.segments, r.single) {
                    Target::Local(k, path) => {
                        let (k, path) = self.follow(&k, &path, &|_| true);
                        let to = self.file_of(&k, &path)?;
                        Some((r.clone(), path, to))
                    }
                    _ => None,
                },
            )
            .collect()
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate and module of a file of `src/`, from the file tree.
fn module_of(name: &str) -> (String, Vec<String>) {
    if name == "main.rs" {
        return ("bin:main".into(), Vec::new());
    }
    if let Some(bin) = name.strip_prefix("bin/") {
        let bin = bin.split('/').next().unwrap().trim_end_matches(".rs");
        return (format!("bin:{bin}"), Vec::new());
    }
    let mut module: Vec<String> = name
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
        module.pop();
    }
    (LIB.into(), module)
}

fn line_of(ident: &proc_macro2::Ident) -> usize {
    ident.span().start().line
}

/// Pass one: what each module declares.
struct ScopeReader<'a> {
    krate: &'a str,
    stack: Vec<String>,
    scopes: &'a mut BTreeMap<(String, Vec<String>), Scope>,
}

impl ScopeReader<'_> {
    fn here(&mut self) -> &mut Scope {
        self.scopes
            .entry((self.krate.to_owned(), self.stack.clone()))
            .or_default()
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                if name == "self" {
                    if let Some(last) = prefix.last().cloned() {
                        self.here().aliases.insert(last, prefix.clone());
                    }
                } else {
                    let path = [prefix.as_slice(), std::slice::from_ref(&name)].concat();
                    self.here().aliases.insert(name, path);
                }
            }
            syn::UseTree::Rename(r) => {
                let name = r.ident.to_string();
                let path = if name == "self" {
                    prefix.clone()
                } else {
                    [prefix.as_slice(), &[name]].concat()
                };
                if r.rename != "_" {
                    self.here().aliases.insert(r.rename.to_string(), path);
                }
            }
            syn::UseTree::Glob(_) => {
                let glob = prefix.clone();
                self.here().globs.push(glob);
            }
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    fn item(&mut self, ident: &syn::Ident) {
        self.here().items.insert(ident.to_string());
    }
}

impl<'ast> Visit<'ast> for ScopeReader<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.here().mods.insert(m.ident.to_string());
        if m.content.is_some() {
            self.here().inline.insert(m.ident.to_string());
        }
        self.stack.push(m.ident.to_string());
        self.here();
        visit::visit_item_mod(self, m);
        self.stack.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        if u.leading_colon.is_some() {
            prefix.push(String::new());
        }
        self.use_tree(&mut prefix, &u.tree);
    }

    fn visit_item_struct(&mut self, i: &'ast syn::ItemStruct) {
        self.item(&i.ident);
        visit::visit_item_struct(self, i);
    }
    fn visit_item_enum(&mut self, i: &'ast syn::ItemEnum) {
        self.item(&i.ident);
        visit::visit_item_enum(self, i);
    }
    fn visit_item_fn(&mut self, i: &'ast syn::ItemFn) {
        self.item(&i.sig.ident);
        visit::visit_item_fn(self, i);
    }
    fn visit_item_const(&mut self, i: &'ast syn::ItemConst) {
        self.item(&i.ident);
        visit::visit_item_const(self, i);
    }
    fn visit_item_static(&mut self, i: &'ast syn::ItemStatic) {
        self.item(&i.ident);
        visit::visit_item_static(self, i);
    }
    fn visit_item_trait(&mut self, i: &'ast syn::ItemTrait) {
        self.item(&i.ident);
        visit::visit_item_trait(self, i);
    }
    fn visit_item_type(&mut self, i: &'ast syn::ItemType) {
        self.item(&i.ident);
        visit::visit_item_type(self, i);
    }
    fn visit_item_union(&mut self, i: &'ast syn::ItemUnion) {
        self.item(&i.ident);
        visit::visit_item_union(self, i);
    }
    fn visit_item_macro(&mut self, i: &'ast syn::ItemMacro) {
        if let Some(ident) = &i.ident {
            self.item(ident);
        }
        visit::visit_item_macro(self, i);
    }
}

/// Pass two: every path a file names.
struct RefReader {
    stack: Vec<String>,
    refs: Vec<Reference>,
    /// Within a `pub use`.
    reexport: bool,
}

impl RefReader {
    fn push(&mut self, line: usize, segments: Vec<String>, single: bool) {
        self.refs.push(Reference {
            line,
            scope: self.stack.clone(),
            segments,
            single,
            reexport: self.reexport,
        });
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(syn::UseName { ident })
            | syn::UseTree::Rename(syn::UseRename { ident, .. }) => {
                let mut path = prefix.clone();
                if ident != "self" {
                    path.push(ident.to_string());
                }
                self.push(line_of(ident), path, false);
            }
            syn::UseTree::Glob(g) => {
                let line = g.star_token.spans[0].start().line;
                self.push(line, prefix.clone(), false);
            }
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    /// The paths in a macro call's tokens: `a::b::c`, with `::` between identifiers. Strings
    /// are single tokens and comments are gone, so neither is read.
    fn tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut at = 0;
        while at < tokens.len() {
            match &tokens[at] {
                TokenTree::Group(group) => {
                    self.tokens(group.stream());
                    at += 1;
                }
                TokenTree::Ident(first) => {
                    let mut path = vec![first.to_string()];
                    let mut next = at + 1;
                    while is_colon(tokens.get(next), Spacing::Joint)
                        && is_colon(tokens.get(next + 1), Spacing::Alone)
                        && let Some(TokenTree::Ident(ident)) = tokens.get(next + 2)
                    {
                        path.push(ident.to_string());
                        next += 3;
                    }
                    if path.len() > 1 {
                        self.push(line_of(first), path, false);
                    }
                    at = next;
                }
                _ => at += 1,
            }
        }
    }
}

fn is_colon(token: Option<&TokenTree>, spacing: Spacing) -> bool {
    matches!(token, Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == spacing)
}

impl<'ast> Visit<'ast> for RefReader {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.stack.push(m.ident.to_string());
        visit::visit_item_mod(self, m);
        self.stack.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        if u.leading_colon.is_some() {
            prefix.push(String::new());
        }
        self.reexport = !matches!(u.vis, syn::Visibility::Inherited);
        self.use_tree(&mut prefix, &u.tree);
        self.reexport = false;
    }

    /// `pub(super)`, `pub(in crate::x)`: who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments: Vec<String> = Vec::new();
        if path.leading_colon.is_some() {
            segments.push(String::new());
        }
        segments.extend(path.segments.iter().map(|s| s.ident.to_string()));
        if let Some(first) = path.segments.first() {
            let single = segments.len() == 1;
            self.push(line_of(&first.ident), segments, single);
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        self.tokens(mac.tokens.clone());
    }
}

// ---------------------------------------------------------------------------------------------
// The checks, each a list of what is wrong, with what to do about it.

fn allowed(layer: &str) -> Option<&'static [&'static str]> {
    LAYERS
        .iter()
        .find(|(l, _)| *l == layer)
        .map(|(_, below)| *below)
}

/// Each layer uses only the layers below it and the leaves; a leaf uses nothing; nothing uses
/// what lib.rs defines; `super::` stays in its folder.
fn layer_problems(model: &Model) -> Vec<String> {
    let mut wrong = Vec::new();
    for file in &model.files {
        let Some(layer) = file.layer() else {
            continue;
        };
        if layer == "lib.rs" {
            continue;
        }
        let is_leaf = LEAVES.contains(&layer);
        if !is_leaf && allowed(layer).is_none() {
            wrong.push(format!(
                "src/{}: the module `{layer}` is not in ARCHITECTURE.md's picture; place it there, \
                 and in LAYERS or LEAVES in tests/layers.rs",
                file.name
            ));
            continue;
        }
        for r in &file.refs {
            let Target::Local(krate, named) =
                model.resolve(&file.krate, &r.scope, &r.segments, r.single)
            else {
                continue;
            };
            let line = r.line;
            let written = r.written();
            if r.segments.first().is_some_and(|s| s == "super") && !named.starts_with(file.folder())
            {
                wrong.push(format!(
                    "src/{}:{line}: `{written}` reaches out of its folder with super::; write it \
                     as `crate::{}` so the layer it uses is plain",
                    file.name,
                    named.join("::")
                ));
            }
            // The layer is the first module the path enters: through lib.rs's re-exports, not
            // through a layer's own (`crate::agent::WatchdogStatus` is the agent's face).
            let (_, entered) = model.follow(&krate, &named, &|p: &[String]| p.len() <= 1);
            let Some(target) = model.file_of(LIB, &entered).map(|i| &model.files[i]) else {
                continue;
            };
            let used = target.layer().unwrap_or("lib.rs");
            if used == layer {
                continue;
            }
            if used == "lib.rs" {
                wrong.push(format!(
                    "src/{}:{line}: {layer} uses `{written}`, which lib.rs defines. The crate root \
                     re-exports the app, so a layer that uses it points up at the app: move it \
                     into a leaf module of its own (like sync.rs) and list that in LEAVES",
                    file.name
                ));
            } else if is_leaf {
                wrong.push(format!(
                    "src/{}:{line}: the leaf {layer} uses `{written}` ({used}); a leaf uses no \
                     other module of the crate, so that any layer may use it: hand it the value \
                     instead",
                    file.name
                ));
            } else if !LEAVES.contains(&used) && !allowed(layer).unwrap().contains(&used) {
                wrong.push(format!(
                    "src/{}:{line}: {layer} uses `{written}` ({used}), but {layer} may use only \
                     {:?} and the leaves {LEAVES:?}. Move what it needs down to a layer it may \
                     use, or have the layer above hand it in (ARCHITECTURE.md, the picture)",
                    file.name,
                    allowed(layer).unwrap()
                ));
            }
        }
    }
    wrong
}

/// The binary goes through the app, and names at least something of it.
fn binary_problems(model: &Model) -> Vec<String> {
    let mut wrong = Vec::new();
    let Some(main) = model.files.iter().find(|f| f.name == "main.rs") else {
        return vec!["src/main.rs: not found".into()];
    };
    let mut through_app = 0;
    for r in &main.refs {
        let Target::Local(krate, named) =
            model.resolve(&main.krate, &r.scope, &r.segments, r.single)
        else {
            continue;
        };
        if krate != LIB {
            continue;
        }
        let (_, entered) = model.follow(&krate, &named, &|p: &[String]| p.len() <= 1);
        let used = entered.first().map_or("lib.rs", String::as_str);
        if used == "app" {
            through_app += 1;
        } else {
            wrong.push(format!(
                "src/main.rs:{}: main uses `{}` ({used}); it builds and serves through app \
                 only: give app a function for it (ARCHITECTURE.md, main.rs)",
                r.line,
                r.written()
            ));
        }
    }
    if through_app == 0 {
        wrong
            .push("src/main.rs: names nothing of claude_proxy::app; is this reading wrong?".into());
    }
    wrong
}

/// The HTTP crates only in http/ and app/; no HTTP status below them.
fn http_problems(model: &Model) -> Vec<String> {
    let mut wrong = Vec::new();
    for file in &model.files {
        let layer = file.layer().unwrap_or(&file.name);
        if HTTP_LAYERS.contains(&layer) {
            continue;
        }
        for r in &file.refs {
            let target = model.resolve(&file.krate, &r.scope, &r.segments, r.single);
            if let Target::Extern(path) = &target
                && HTTP_CRATES.contains(&path[0].as_str())
            {
                wrong.push(format!(
                    "src/{}:{}: {layer} names the HTTP crate {} (`{}`); only http/ and app/ know \
                     HTTP: give the edge a domain type and let it translate",
                    file.name,
                    r.line,
                    path[0],
                    r.written()
                ));
            } else if file.krate == LIB && r.segments.iter().any(|s| s == "StatusCode") {
                wrong.push(format!(
                    "src/{}:{}: {layer} names an HTTP status (`{}`); statuses belong to \
                     http/error.rs (`ApiError`, built From the core's errors): return a domain \
                     error with an `ErrorKind`",
                    file.name,
                    r.line,
                    r.written()
                ));
            }
        }
    }
    wrong
}

/// The node a file is in a folder's graph: `x.rs` for a file beside the folder's `mod.rs`,
/// `x/` for a sub-folder; `None` outside the folder, and for the folder's own `mod.rs` (or
/// lib.rs): that is the folder's face, which declares the files, re-exports what the layer
/// above uses, and may define the type the files implement (`Agents`, `ApiState`).
fn node_in(model: &Model, folder: &[String], file: &SourceFile) -> Option<String> {
    if file.krate != LIB || !file.module.starts_with(folder) || file.module.len() == folder.len() {
        return None;
    }
    let child = &file.module[folder.len()];
    let child_path = [folder, std::slice::from_ref(child)].concat();
    let is_folder = model
        .files
        .iter()
        .any(|f| f.module == child_path && f.name.ends_with("mod.rs"));
    Some(if is_folder {
        format!("{child}/")
    } else {
        format!("{child}.rs")
    })
}

/// The files (and sub-folders) beside each folder's `mod.rs` use each other without a cycle.
fn cycle_problems(model: &Model) -> Vec<String> {
    // For each folder, its graph: node -> node -> the first place the arrow is drawn.
    type Graph = BTreeMap<String, BTreeMap<String, String>>;
    let mut folders: BTreeMap<Vec<String>, Graph> = BTreeMap::new();
    for file in model
        .files
        .iter()
        .filter(|f| f.krate == LIB && f.is_folder_root())
    {
        folders.insert(file.module.clone(), Graph::new());
    }
    for (index, file) in model.files.iter().enumerate() {
        // A re-export is not a use: a file that names one is led through it to where the
        // thing is defined.
        for (r, _, to) in model
            .local_uses(index)
            .into_iter()
            .filter(|(r, ..)| !r.reexport)
        {
            let to = &model.files[to];
            for (folder, graph) in folders.iter_mut() {
                let (Some(a), Some(b)) = (node_in(model, folder, file), node_in(model, folder, to))
                else {
                    continue;
                };
                if a != b {
                    graph
                        .entry(a)
                        .or_default()
                        .entry(b)
                        .or_insert_with(|| format!("{}:{} `{}`", file.name, r.line, r.written()));
                }
            }
        }
    }
    let mut wrong = Vec::new();
    for (folder, graph) in &folders {
        let shown = if folder.is_empty() {
            "src/".to_owned()
        } else {
            format!("src/{}/", folder.join("/"))
        };
        let plain: BTreeMap<String, BTreeSet<String>> = graph
            .iter()
            .map(|(a, to)| (a.clone(), to.keys().cloned().collect()))
            .collect();
        for cycle in cycles(&plain) {
            let arrows: Vec<String> = cycle
                .windows(2)
                .map(|w| graph[&w[0]][&w[1]].clone())
                .collect();
            wrong.push(format!(
                "{shown}: a cycle: {} (at {}). Move what they share to where the arrows point \
                 one way: into the lower file, or a file of its own that both use",
                cycle.join(" → "),
                arrows.join("; ")
            ));
        }
    }
    wrong
}

/// One cycle for each strongly connected part of `graph` with more than one node (Tarjan),
/// each from its first node back to it: `[a.rs, b.rs, a.rs]`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        parts: Vec<Vec<&'g str>>,
    }
    impl<'g> Tarjan<'g> {
        fn connect(&mut self, node: &'g str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next.as_str()) {
                    self.connect(next);
                    let low = self.low[node].min(self.low[next.as_str()]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next.as_str()) {
                    let low = self.low[node].min(self.index[next.as_str()]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut part = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    part.push(top);
                    if top == node {
                        break;
                    }
                }
                self.parts.push(part);
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        parts: Vec::new(),
    };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node.as_str()) {
            tarjan.connect(node);
        }
    }
    let mut found = Vec::new();
    for part in tarjan.parts.into_iter().filter(|p| p.len() > 1) {
        let inside: BTreeSet<&str> = part.iter().copied().collect();
        let start = *inside.iter().next().unwrap();
        // The shortest way back to `start` within the part.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        'search: while let Some(node) = queue.pop_front() {
            for next in graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !inside.contains(next) {
                    continue;
                }
                if next == start {
                    came_from.insert(start, node);
                    break 'search;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        let mut cycle = vec![start.to_owned()];
        let mut at = came_from[start];
        while at != start {
            cycle.push(at.to_owned());
            at = came_from[at];
        }
        cycle.push(start.to_owned());
        cycle.reverse();
        found.push(cycle);
    }
    found
}

/// Each `mod x;` without a body has its file where the module tree says: the reading's own
/// check (a `#[path]` would fool it).
fn model_problems(model: &Model) -> Vec<String> {
    let mut wrong = Vec::new();
    for ((krate, module), scope) in &model.scopes {
        for name in scope.mods.difference(&scope.inline) {
            let child = [module.as_slice(), std::slice::from_ref(name)].concat();
            if !model
                .files
                .iter()
                .any(|f| f.krate == *krate && f.module == child)
            {
                wrong.push(format!(
                    "{krate} {}: `mod {name}` has no file where tests/layers.rs looks (a #[path]?)",
                    module.join("::")
                ));
            }
        }
    }
    wrong
}

fn report(what: &str, wrong: &[String]) {
    assert!(wrong.is_empty(), "{what}:\n{}\n", wrong.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The checks of src/.

#[test]
fn each_layer_uses_only_the_layers_below_it_and_the_leaves() {
    let model = Model::of_src();
    assert!(
        model.files.len() > 20,
        "only {} files were read",
        model.files.len()
    );
    report("the module tree is not as read", &model_problems(&model));
    report("layering broken", &layer_problems(&model));
}

#[test]
fn the_binary_goes_through_the_app() {
    report("main.rs", &binary_problems(&Model::of_src()));
}

#[test]
fn only_the_edge_knows_http() {
    report("HTTP below the edge", &http_problems(&Model::of_src()));
}

#[test]
fn no_cycle_between_the_files_of_a_folder() {
    report("cycles", &cycle_problems(&Model::of_src()));
}

// ---------------------------------------------------------------------------------------------
// The reading itself, on small sources.

fn uses_of(model: &Model, name: &str) -> BTreeSet<String> {
    let index = model.files.iter().position(|f| f.name == name).unwrap();
    model
        .local_uses(index)
        .into_iter()
        .map(|(_, _, to)| model.files[to].name.clone())
        .filter(|to| to != name)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

const AGENT_MOD: &str = "mod error; mod journal; mod view; pub use error::Error;";

#[test]
fn the_reading_sees_super_paths_and_follows_re_exports() {
    let model = Model::new(&[
        ("lib.rs", "pub mod agent;"),
        ("agent/mod.rs", AGENT_MOD),
        ("agent/error.rs", "pub struct Error;"),
        ("agent/view.rs", "pub struct View;"),
        (
            "agent/journal.rs",
            "use super::Error;\nfn f() -> super::view::View { todo!() }",
        ),
    ]);
    assert_eq!(
        uses_of(&model, "agent/journal.rs"),
        set(&["agent/error.rs", "agent/view.rs"])
    );
}

#[test]
fn the_reading_is_not_fooled_by_strings_or_comments() {
    let model = Model::new(&[
        ("lib.rs", "pub mod agent; pub mod http; pub mod app;"),
        ("agent/mod.rs", AGENT_MOD),
        ("agent/error.rs", "pub struct Error;"),
        ("agent/view.rs", "pub struct View;"),
        (
            "agent/journal.rs",
            "fn f() { let u = \"https://x\"; let e = crate::agent::error::Error; }\n\
             // crate::http::Router\n\
             /* crate::app::App */\n\
             const S: &str = \"crate::app::App\";",
        ),
        ("http/mod.rs", ""),
        ("app/mod.rs", ""),
    ]);
    assert_eq!(
        uses_of(&model, "agent/journal.rs"),
        set(&["agent/error.rs"])
    );
    assert!(
        layer_problems(&model).is_empty(),
        "{:?}",
        layer_problems(&model)
    );
}

#[test]
fn the_reading_sees_paths_in_macros_aliases_and_test_modules() {
    let model = Model::new(&[
        ("lib.rs", "pub mod agent; pub mod http; pub mod app;"),
        ("agent/mod.rs", AGENT_MOD),
        ("agent/error.rs", "pub struct Error;"),
        (
            "agent/view.rs",
            "use crate::http as edge;\nfn f() { edge::x(); }",
        ),
        (
            "agent/journal.rs",
            "fn f() { tokio::select! { _ = crate::app::go() => {} } }\n\
             #[cfg(test)] mod tests { use super::super::view; fn g() { view::View::new(); } }",
        ),
        ("http/mod.rs", "pub fn x() {}"),
        ("app/mod.rs", "pub fn go() {}"),
    ]);
    assert_eq!(
        uses_of(&model, "agent/journal.rs"),
        set(&["app/mod.rs", "agent/view.rs"])
    );
    let wrong = layer_problems(&model);
    assert_eq!(wrong.len(), 3, "{wrong:#?}");
    for expected in [
        "src/agent/journal.rs:1: agent uses `crate::app::go` (app)",
        "src/agent/view.rs:1: agent uses `crate::http` (http)",
        "src/agent/view.rs:2: agent uses `edge::x` (http)",
    ] {
        assert!(
            wrong.iter().any(|w| w.contains(expected)),
            "{expected}: {wrong:#?}"
        );
    }
}

#[test]
fn the_checks_fail_on_what_they_forbid() {
    let model = Model::new(&[
        (
            "lib.rs",
            "pub mod agent; pub mod app; pub use app::App;\npub fn lock() {}",
        ),
        ("agent/mod.rs", "mod a; mod b;"),
        (
            "agent/a.rs",
            "use super::b::B; pub struct A;\nfn f() { crate::lock(); }",
        ),
        (
            "agent/b.rs",
            "use super::a::A; pub struct B;\nfn f(s: axum::http::StatusCode) {}\nfn g() -> my_axum::X {}",
        ),
        (
            "app/mod.rs",
            "pub struct App;\nfn f() { crate::agent::go(); }",
        ),
        (
            "main.rs",
            "use claude_proxy::App;\nfn main() { claude_proxy::agent::go(); }",
        ),
    ]);
    let cycles = cycle_problems(&model);
    assert!(
        cycles
            .iter()
            .any(|c| c.starts_with("src/agent/: a cycle: a.rs → b.rs → a.rs")),
        "{cycles:#?}"
    );
    assert_eq!(cycles.len(), 1, "{cycles:#?}");
    // lib.rs re-exports the app: a layer that uses what lib.rs defines points up at it.
    let layers = layer_problems(&model);
    assert!(
        layers
            .iter()
            .any(|w| w.contains("uses `crate::lock`, which lib.rs defines"))
    );
    let http = http_problems(&model);
    assert_eq!(http.len(), 1, "{http:#?}");
    assert!(http[0].contains("src/agent/b.rs:2: agent names the HTTP crate axum"));
    let main = binary_problems(&model);
    assert_eq!(main.len(), 1, "{main:#?}");
    assert!(main[0].contains("src/main.rs:2: main uses `claude_proxy::agent::go` (agent)"));
}

#[test]
fn the_cycle_finder_names_one_cycle_per_knot() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a.rs", &["b.rs"][..]),
        ("b.rs", &["c.rs"]),
        ("c.rs", &["a.rs", "d.rs"]),
        ("d.rs", &[]),
    ]
    .into_iter()
    .map(|(a, to)| (a.to_owned(), set(to)))
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a.rs", "b.rs", "c.rs", "a.rs"]]);
}

/// ARCHITECTURE.md's code map, each `### ` section by the `src/` paths its heading names.
fn code_map() -> Vec<(Vec<String>, String)> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    let mut sections = Vec::new();
    for section in text.split("\n### ").skip(1) {
        let (heading, body) = section.split_once('\n').unwrap_or((section, ""));
        let paths = heading
            .split('`')
            .skip(1)
            .step_by(2)
            .filter_map(|p| p.strip_prefix("src/"))
            .map(str::to_owned)
            .collect::<Vec<_>>();
        sections.push((paths, body.to_owned()));
    }
    sections
}

#[test]
fn the_code_map_names_every_file_in_its_folders_section() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let map = code_map();
    let mut unnamed = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The section whose heading is the file itself, or its top folder.
        let named = map.iter().any(|(paths, body)| {
            paths.contains(&relative)
                || paths.iter().any(|p| {
                    p.ends_with('/')
                        && relative.strip_prefix(p.as_str()).is_some_and(|inside| {
                            body.contains(&format!("`{inside}`"))
                                || body.contains(&format!("({inside})"))
                        })
                })
        });
        if !named {
            unnamed.push(format!(
                "src/{relative}: name it, in backquotes and by its path within its folder, in its folder's section of ARCHITECTURE.md's code map"
            ));
        }
    }
    report("files the code map does not name", &unnamed);
}
