//! Programming language from a file name, the way GitHub's linguist names languages.
//!
//! Exact file names first (`Makefile`, `Dockerfile`), then the extension, case-insensitively.
//! Ambiguous extensions get linguist's most common reading (`.h` is C, `.m` Objective-C,
//! `.pl` Perl); content heuristics are left out on purpose: the label must not depend on the
//! bytes, so that it is known before the fetch and stable across runs.
//!
//! (The `hyperpolyglot` crate only detects from files on disk and builds PCRE2 from C; a
//! table of our own is enough for the name-based column and costs nothing.)

/// Exact file names.
const NAMES: &[(&str, &str)] = &[
    ("BUILD", "Starlark"),
    ("BUILD.bazel", "Starlark"),
    ("CMakeLists.txt", "CMake"),
    ("Dockerfile", "Dockerfile"),
    ("Gemfile", "Ruby"),
    ("GNUmakefile", "Makefile"),
    ("Jenkinsfile", "Groovy"),
    ("Makefile", "Makefile"),
    ("Rakefile", "Ruby"),
    ("Vagrantfile", "Ruby"),
    ("WORKSPACE", "Starlark"),
    ("makefile", "Makefile"),
    ("meson.build", "Meson"),
];

/// Extensions (lower case, without the dot), sorted for binary search.
const EXTENSIONS: &[(&str, &str)] = &[
    ("asm", "Assembly"),
    ("bash", "Shell"),
    ("bat", "Batchfile"),
    ("c", "C"),
    ("c++", "C++"),
    ("cc", "C++"),
    ("cjs", "JavaScript"),
    ("clj", "Clojure"),
    ("cljs", "Clojure"),
    ("cmake", "CMake"),
    ("cmd", "Batchfile"),
    ("coffee", "CoffeeScript"),
    ("cpp", "C++"),
    ("cr", "Crystal"),
    ("cs", "C#"),
    ("css", "CSS"),
    ("cu", "Cuda"),
    ("cuh", "Cuda"),
    ("cxx", "C++"),
    ("d", "D"),
    ("dart", "Dart"),
    ("dockerfile", "Dockerfile"),
    ("el", "Emacs Lisp"),
    ("elm", "Elm"),
    ("erl", "Erlang"),
    ("ex", "Elixir"),
    ("exs", "Elixir"),
    ("f", "Fortran"),
    ("f90", "Fortran"),
    ("f95", "Fortran"),
    ("fish", "fish"),
    ("fs", "F#"),
    ("fsx", "F#"),
    ("go", "Go"),
    ("gradle", "Groovy"),
    ("graphql", "GraphQL"),
    ("groovy", "Groovy"),
    ("h", "C"),
    ("h++", "C++"),
    ("hh", "C++"),
    ("hpp", "C++"),
    ("hs", "Haskell"),
    ("htm", "HTML"),
    ("html", "HTML"),
    ("hxx", "C++"),
    ("ini", "INI"),
    ("ipynb", "Jupyter Notebook"),
    ("java", "Java"),
    ("jl", "Julia"),
    ("js", "JavaScript"),
    ("json", "JSON"),
    ("jsx", "JavaScript"),
    ("kt", "Kotlin"),
    ("kts", "Kotlin"),
    ("less", "Less"),
    ("lisp", "Common Lisp"),
    ("lua", "Lua"),
    ("m", "Objective-C"),
    ("markdown", "Markdown"),
    ("md", "Markdown"),
    ("mjs", "JavaScript"),
    ("mk", "Makefile"),
    ("ml", "OCaml"),
    ("mli", "OCaml"),
    ("mm", "Objective-C++"),
    ("nim", "Nim"),
    ("nix", "Nix"),
    ("php", "PHP"),
    ("pl", "Perl"),
    ("pm", "Perl"),
    ("proto", "Protocol Buffer"),
    ("ps1", "PowerShell"),
    ("py", "Python"),
    ("pyi", "Python"),
    ("pyx", "Cython"),
    ("r", "R"),
    ("rb", "Ruby"),
    ("rkt", "Racket"),
    ("rs", "Rust"),
    ("rst", "reStructuredText"),
    ("s", "Assembly"),
    ("sass", "Sass"),
    ("scala", "Scala"),
    ("scm", "Scheme"),
    ("scss", "SCSS"),
    ("sh", "Shell"),
    ("sol", "Solidity"),
    ("sql", "SQL"),
    ("sv", "SystemVerilog"),
    ("svelte", "Svelte"),
    ("swift", "Swift"),
    ("tcl", "Tcl"),
    ("tex", "TeX"),
    ("tf", "HCL"),
    ("toml", "TOML"),
    ("ts", "TypeScript"),
    ("tsx", "TSX"),
    ("v", "Verilog"),
    ("vb", "Visual Basic .NET"),
    ("vhd", "VHDL"),
    ("vhdl", "VHDL"),
    ("vue", "Vue"),
    ("xml", "XML"),
    ("yaml", "YAML"),
    ("yml", "YAML"),
    ("zig", "Zig"),
    ("zsh", "Shell"),
];

/// The language of the file at `path` (its last component decides), if known.
pub fn language(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if let Some((_, l)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Some(l);
    }
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    let ext = ext.to_ascii_lowercase();
    EXTENSIONS
        .binary_search_by(|(e, _)| (*e).cmp(ext.as_str()))
        .ok()
        .map(|i| EXTENSIONS[i].1)
}

/// The quality columns The Stack publishes, computed on text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Mean characters per line.
    pub avg_line_length: f64,
    /// Characters of the longest line.
    pub max_line_length: u64,
    /// Fraction of characters that are letters or digits.
    pub alphanum_fraction: f64,
}

/// Computes [`Quality`] as The Stack does: over characters, lines split at line breaks.
pub fn quality(text: &str) -> Quality {
    let mut lines = 0u64;
    let mut total = 0u64;
    let mut max = 0u64;
    for line in text.lines() {
        let n = line.chars().count() as u64;
        lines += 1;
        total += n;
        max = max.max(n);
    }
    let chars = text.chars().count() as f64;
    let alnum = text.chars().filter(|c| c.is_alphanumeric()).count() as f64;
    Quality {
        avg_line_length: if lines == 0 {
            0.0
        } else {
            total as f64 / lines as f64
        },
        max_line_length: max,
        alphanum_fraction: if chars == 0.0 { 0.0 } else { alnum / chars },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_table_is_sorted_for_binary_search() {
        assert!(EXTENSIONS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn languages_from_names() {
        assert_eq!(language("app/Bootstrap.java"), Some("Java"));
        assert_eq!(language("src/lib.RS"), Some("Rust"));
        assert_eq!(language("x/Makefile"), Some("Makefile"));
        assert_eq!(language("README"), None);
        assert_eq!(language(".bashrc"), None);
        assert_eq!(language("a.unknownext"), None);
    }

    #[test]
    fn quality_columns() {
        let q = quality("ab\nc d\n");
        assert_eq!(q.max_line_length, 3);
        assert!((q.avg_line_length - 2.5).abs() < 1e-9);
        assert!((q.alphanum_fraction - 4.0 / 7.0).abs() < 1e-9);
        assert_eq!(quality("").max_line_length, 0);
    }
}
