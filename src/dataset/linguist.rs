//! Language, vendored and generated files, decided as GitHub's linguist decides them: the
//! file name and extension first ([`crate::phases::language`]), then, for extensions several
//! languages share (`.h`, `.m`, `.pl`, `.ts`, `.inc`, `.v`), heuristics on the content; and
//! linguist's path rules for vendored code and its markers of generated files.
//!
//! The heuristics look at the first [`HEAD`] bytes only, line by line, with plain string
//! tests (linguist uses regular expressions for the same tests).

use crate::phases::language::language;

/// Bytes of the content the heuristics read.
pub const HEAD: usize = 64 << 10;

/// The lines of the content's head, trimmed at the end.
fn lines(content: &[u8]) -> impl Iterator<Item = &str> {
    let head = &content[..content.len().min(HEAD)];
    // A cut inside a UTF-8 sequence loses at most the last line.
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
    };
    text.lines().map(str::trim_end)
}

fn any_line(content: &[u8], test: impl Fn(&str) -> bool) -> bool {
    lines(content).any(test)
}

fn word_at_start(line: &str, words: &[&str]) -> bool {
    let l = line.trim_start();
    words.iter().any(|w| {
        l.strip_prefix(w).is_some_and(|rest| {
            rest.is_empty() || !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    })
}

/// `.h`: Objective-C, C++ or C.
fn header(c: &[u8]) -> &'static str {
    if any_line(c, |l| {
        word_at_start(
            l,
            &["@interface", "@end", "@protocol", "@property", "#import"],
        )
    }) {
        return "Objective-C";
    }
    let cpp_includes = [
        "<iostream>",
        "<string>",
        "<vector>",
        "<map>",
        "<memory>",
        "<algorithm>",
        "<cstdint>",
        "<cstdio>",
        "<cstdlib>",
        "<sstream>",
        "<unordered_map>",
        "<functional>",
    ];
    if any_line(c, |l| {
        let t = l.trim_start();
        (t.starts_with("#include") && cpp_includes.iter().any(|i| t.contains(i)))
            || word_at_start(
                t,
                &[
                    "class",
                    "namespace",
                    "template",
                    "public:",
                    "private:",
                    "protected:",
                ],
            )
            || t.contains("std::")
    }) {
        return "C++";
    }
    "C"
}

/// `.m`: Objective-C, MATLAB or Mercury.
fn dot_m(c: &[u8]) -> Option<&'static str> {
    if any_line(c, |l| {
        word_at_start(
            l,
            &[
                "@interface",
                "@implementation",
                "@end",
                "#import",
                "@property",
            ],
        )
    }) {
        return Some("Objective-C");
    }
    if any_line(c, |l| {
        word_at_start(l, &[":- module", ":- interface", ":- implementation"])
    }) {
        return Some("Mercury");
    }
    if any_line(c, |l| {
        let t = l.trim_start();
        word_at_start(
            t,
            &[
                "function",
                "end",
                "endfunction",
                "classdef",
                "disp",
                "fprintf",
            ],
        ) || t.starts_with('%')
    }) {
        return Some("MATLAB");
    }
    // linguist's most common reading when nothing decides.
    Some("Objective-C")
}

/// `.pl`: Perl, Prolog or Raku.
fn dot_pl(c: &[u8]) -> Option<&'static str> {
    if any_line(c, |l| {
        (l.starts_with("#!") && l.contains("perl6")) || word_at_start(l, &["use v6"])
    }) {
        return Some("Raku");
    }
    if any_line(c, |l| {
        (l.starts_with("#!") && l.contains("perl"))
            || word_at_start(
                l,
                &[
                    "use strict",
                    "use warnings",
                    "my",
                    "sub",
                    "package",
                    "print",
                ],
            )
    }) {
        return Some("Perl");
    }
    if any_line(c, |l| {
        let t = l.trim_start();
        t.starts_with(":-")
            || (t.contains(":-") && t.ends_with('.'))
            || (t.ends_with(").") && !t.contains(';'))
    }) {
        return Some("Prolog");
    }
    Some("Perl")
}

/// `.ts`: TypeScript, or a Qt translation file (XML).
fn dot_ts(c: &[u8]) -> Option<&'static str> {
    if any_line(c, |l| {
        l.trim_start().starts_with("<TS") || l.trim_start().starts_with("<!DOCTYPE TS")
    }) {
        return Some("XML");
    }
    Some("TypeScript")
}

/// `.inc`: PHP, Pascal, Assembly or C++; none when nothing decides (linguist has no default).
fn dot_inc(c: &[u8]) -> Option<&'static str> {
    if any_line(c, |l| {
        l.contains("<?php") || l.trim_start().starts_with("<?=")
    }) {
        return Some("PHP");
    }
    if any_line(c, |l| {
        word_at_start(
            &l.to_ascii_lowercase(),
            &["procedure", "function", "begin", "unit", "uses"],
        ) && l.trim_end().ends_with(';')
    }) {
        return Some("Pascal");
    }
    if any_line(c, |l| {
        let t = l.trim_start().to_ascii_lowercase();
        word_at_start(
            &t,
            &[
                "mov", "db", "dw", "dd", "equ", "section", "global", "push", "pop",
            ],
        ) || t.split_whitespace().nth(1).is_some_and(|w| w == "equ")
    }) {
        return Some("Assembly");
    }
    if any_line(c, |l| {
        word_at_start(l, &["#include", "#define", "#ifndef", "#pragma"])
    }) {
        return Some("C++");
    }
    None
}

/// `.v`: Coq or Verilog.
fn dot_v(c: &[u8]) -> Option<&'static str> {
    if any_line(c, |l| {
        word_at_start(
            l,
            &[
                "Theorem",
                "Lemma",
                "Proof.",
                "Qed.",
                "Require Import",
                "Inductive",
                "Definition",
                "Fixpoint",
            ],
        )
    }) {
        return Some("Coq");
    }
    Some("Verilog")
}

/// The language of the file at `path`, its content read when the extension is ambiguous.
pub fn detect(path: &str, content: Option<&[u8]>) -> Option<&'static str> {
    let by_name = language(path);
    let name = path.rsplit('/').next().unwrap_or(path);
    let (Some(c), Some((stem, ext))) = (content, name.rsplit_once('.')) else {
        return by_name;
    };
    if stem.is_empty() {
        return by_name;
    }
    match ext.to_ascii_lowercase().as_str() {
        "h" => Some(header(c)),
        "m" => dot_m(c),
        "pl" => dot_pl(c),
        "ts" => dot_ts(c),
        "inc" => dot_inc(c),
        "v" => dot_v(c),
        _ => by_name,
    }
}

/// Path parts linguist counts as vendored (a folder anywhere in the path).
const VENDOR_DIRS: &[&str] = &[
    "node_modules",
    "vendor",
    "vendors",
    "third_party",
    "third-party",
    "thirdparty",
    "3rdparty",
    "bower_components",
    "Pods",
    "Carthage",
    "external",
    "externals",
    "deps",
    "extern",
    ".yarn",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "jspm_packages",
];

/// File names (lower case) of well-known bundled libraries.
const VENDOR_FILE_PREFIXES: &[&str] = &[
    "jquery",
    "bootstrap",
    "angular",
    "backbone",
    "underscore",
    "modernizr",
    "prototype",
    "mootools",
    "d3.",
    "three.",
    "react.",
    "react-dom.",
    "vue.",
    "lodash",
];

/// Whether the file at `path` is vendored code (linguist's `vendor.yml`, its common rules).
pub fn is_vendor(path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    let name = parts.pop().unwrap_or("").to_ascii_lowercase();
    parts.iter().any(|p| VENDOR_DIRS.contains(p))
        || (VENDOR_FILE_PREFIXES.iter().any(|p| name.starts_with(p)) && name.ends_with(".js"))
        || name.ends_with(".min.js")
        || name.ends_with(".min.css")
        || name == "gradlew"
        || name == "gradlew.bat"
        || name == "mvnw"
        || name == "mvnw.cmd"
}

/// File names linguist counts as generated, whatever their content.
const GENERATED_NAMES: &[&str] = &[
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "cargo.lock",
    "composer.lock",
    "gemfile.lock",
    "poetry.lock",
    "pipfile.lock",
    "go.sum",
    "npm-shrinkwrap.json",
];

/// Endings of generated files (protobuf, gRPC, Qt, designer files...).
const GENERATED_SUFFIXES: &[&str] = &[
    ".pb.go",
    ".pb.h",
    ".pb.cc",
    "_pb2.py",
    "_pb2_grpc.py",
    ".pb.swift",
    ".designer.cs",
    ".g.cs",
    ".g.dart",
    ".freezed.dart",
    "_generated.go",
    ".generated.ts",
    ".min.js",
    ".min.css",
    ".js.map",
    ".css.map",
];

/// Markers near the top of a generated file.
const GENERATED_MARKERS: &[&str] = &[
    "code generated by",
    "do not edit",
    "autogenerated",
    "auto-generated",
    "automatically generated",
    "generated by the protocol buffer compiler",
    "this file was generated",
    "@generated",
];

/// Whether the file at `path` is generated: linguist's names and endings, a marker in its
/// first lines, or minified text (few lines, very long).
pub fn is_generated(path: &str, content: Option<&[u8]>) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    if GENERATED_NAMES.contains(&name.as_str())
        || GENERATED_SUFFIXES.iter().any(|s| name.ends_with(s))
    {
        return true;
    }
    let Some(c) = content else { return false };
    if lines(c).take(10).any(|l| {
        let l = l.to_ascii_lowercase();
        GENERATED_MARKERS.iter().any(|m| l.contains(m))
    }) {
        return true;
    }
    // Minified: on average more than 110 characters per line over more than 5000 bytes
    // (linguist's `minified_files?`).
    let n = lines(c).count().max(1);
    c.len() > 5000 && (c.len().min(HEAD) / n) > 110
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_extensions_read_the_content() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "a.h",
                "#import <Foundation/Foundation.h>\n@interface A : NSObject\n@end\n",
                Some("Objective-C"),
            ),
            (
                "a.h",
                "#include <vector>\nclass A { public: int x; };\n",
                Some("C++"),
            ),
            (
                "a.h",
                "#ifndef A_H\n#define A_H\nint f(void);\n#endif\n",
                Some("C"),
            ),
            (
                "a.m",
                "@implementation A\n- (void)f {}\n@end\n",
                Some("Objective-C"),
            ),
            (
                "a.m",
                "function y = f(x)\n  % square\n  y = x.^2;\nend\n",
                Some("MATLAB"),
            ),
            ("a.m", ":- module a.\n:- interface.\n", Some("Mercury")),
            (
                "a.pl",
                "#!/usr/bin/perl\nuse strict;\nmy $x = 1;\n",
                Some("Perl"),
            ),
            (
                "a.pl",
                "parent(tom, bob).\nancestor(X, Y) :- parent(X, Y).\n",
                Some("Prolog"),
            ),
            ("a.pl", "use v6;\nsay 'hi';\n", Some("Raku")),
            ("a.ts", "export const x: number = 1;\n", Some("TypeScript")),
            (
                "a.ts",
                "<?xml version=\"1.0\"?>\n<!DOCTYPE TS>\n<TS version=\"2.1\">\n",
                Some("XML"),
            ),
            ("a.inc", "<?php\n$x = 1;\n", Some("PHP")),
            ("a.inc", "procedure Foo;\nbegin\nend;\n", Some("Pascal")),
            ("a.inc", "    mov eax, 1\n    db 0\n", Some("Assembly")),
            ("a.inc", "#define N 3\n", Some("C++")),
            ("a.inc", "plain words\n", None),
            (
                "a.v",
                "Theorem t : True.\nProof. trivial. Qed.\n",
                Some("Coq"),
            ),
            ("a.v", "module m(input a);\nendmodule\n", Some("Verilog")),
            // Unambiguous extensions keep their name's language, whatever the content.
            ("a.rs", "@interface\n", Some("Rust")),
        ];
        for (path, text, want) in cases {
            assert_eq!(
                detect(path, Some(text.as_bytes())),
                *want,
                "{path}: {text:?}"
            );
        }
        assert_eq!(
            detect("a.h", None),
            Some("C"),
            "no content: the name's reading"
        );
        assert_eq!(detect("a.h", Some(&[0xff, 0xfe, 0x00])), Some("C"));
    }

    #[test]
    fn vendored_and_generated_files() {
        assert!(is_vendor("web/node_modules/left-pad/index.js"));
        assert!(is_vendor("third_party/zlib/inflate.c"));
        assert!(is_vendor("static/js/jquery-3.6.0.js"));
        assert!(is_vendor("static/app.min.js"));
        assert!(!is_vendor("src/vendorize.rs"));
        assert!(!is_vendor("src/main.rs"));
        assert!(is_generated("api/service.pb.go", None));
        assert!(is_generated("package-lock.json", None));
        assert!(is_generated(
            "x.go",
            Some(b"// Code generated by stringer. DO NOT EDIT.\npackage x\n")
        ));
        assert!(is_generated(
            "bundle.js",
            Some("x".repeat(20_000).as_bytes())
        ));
        assert!(!is_generated(
            "main.go",
            Some(b"package main\n\nfunc main() {}\n")
        ));
        assert!(!is_generated(
            "big.py",
            Some("x = 1\n".repeat(5000).as_bytes())
        ));
    }
}
