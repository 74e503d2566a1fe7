//! Builds zig-out/lib/libhakmem.so (the allocator, its hak_* API and the libc names; and
//! beside it libhakmem-checked.so, the same in ReleaseSafe with the validators running), with
//! zig-out/include/hakmem.h and zig-out/lib/pkgconfig/hakmem.pc for C programs that link it;
//! zig-out/lib/libhakmem_kernels.so (the harness's workload loops, zig/tools/kernels.zig: linked
//! against libhakmem.so, never part of it); and runs the Zig unit tests (`zig build test`).
//!
//! The ABI's constants live in zig/abi.zig; `zig build abi` writes their copies (the
//! generated block of zig/hakmem.h, and src/abi.ts). Both copies are committed; the install
//! and test steps first check that they still match and fail, naming the stale file, if not.
const std = @import("std");

const version = "0.1.0";

pub fn build(b: *std.Build) void {
    // x86-64-v3 (AVX2) by default rather than the build machine's exact CPU: the library
    // then also runs under valgrind (no AVX-512) and on older machines of a fleet.
    // `-Dcpu=native` opts back in.
    const target = b.standardTargetOptions(.{ .default_target = defaultTarget() });
    const optimize = b.standardOptimizeOption(.{});

    const build_id = sourceHash(b);
    const options = buildOptions(b, build_id, false);

    const lib_module = sharedLibraryModule(b, "zig/lib.zig", target, optimize);
    lib_module.addOptions("build_options", options);
    lib_module.addCSourceFile(.{ .file = b.path("zig/tls.c"), .flags = &.{ "-O2", "-fPIC" } });
    const lib = b.addLibrary(.{ .linkage = .dynamic, .name = "hakmem", .root_module = lib_module, .use_llvm = true });
    lib.bundle_compiler_rt = false;
    b.installArtifact(lib);

    // The checked library: the same sources, ReleaseSafe (asserts and safety checks on) and
    // `checked` (zig/thread/validate.zig: validators at slow paths and thread exit). The fuzzer,
    // the preloaded C tests and the soak run against it in `npm test`.
    const checked_options = buildOptions(b, build_id, true);
    const checked_module = sharedLibraryModule(b, "zig/lib.zig", target, .ReleaseSafe);
    checked_module.addOptions("build_options", checked_options);
    checked_module.addCSourceFile(.{ .file = b.path("zig/tls.c"), .flags = &.{ "-O2", "-fPIC" } });
    const checked = b.addLibrary(.{ .linkage = .dynamic, .name = "hakmem-checked", .root_module = checked_module, .use_llvm = true });
    checked.bundle_compiler_rt = false;
    b.installArtifact(checked);

    // The harness's kernels (src/kernels.ts): their own library, so a preloaded process sees
    // only the libc names and hak_*. They call hak_alloc/hak_free through the PLT of
    // libhakmem.so (DT_NEEDED by its soname): loaded after libhakmem.so, as src/ffi.ts does,
    // they use that library's one allocator (the loader matches the soname of the copy
    // already loaded, wherever it came from); $ORIGIN finds zig-out/lib's otherwise.
    const kernels_module = sharedLibraryModule(b, "zig/tools/kernels.zig", target, optimize);
    kernels_module.root_source_file = toolRoot(b, "kernels", .library); // compiled from a copy beside abi.zig's (toolRoot)
    // The .so as a linker input (not linkLibrary, which adds the build cache's directory as
    // an rpath): DT_NEEDED libhakmem.so, found through $ORIGIN alone.
    kernels_module.addObjectFile(lib.getEmittedBin());
    kernels_module.addRPathSpecial("$ORIGIN");
    const kernels = b.addLibrary(.{ .linkage = .dynamic, .name = "hakmem_kernels", .root_module = kernels_module, .use_llvm = true });
    kernels.bundle_compiler_rt = false;
    b.installArtifact(kernels);

    // zig/abi.zig -> zig/hakmem.h (generated block) and src/abi.ts.
    const abi_gen = b.addExecutable(.{
        .name = "abi_gen",
        .root_module = b.createModule(.{ .root_source_file = toolRoot(b, "abi_gen", .executable), .target = b.graph.host, .optimize = .Debug }),
    });
    const abi_check = abiRun(b, abi_gen, "check");
    b.getInstallStep().dependOn(&abi_check.step);
    b.step("abi-check", "Fail when zig/hakmem.h or src/abi.ts no longer match zig/abi.zig").dependOn(&abi_check.step);
    const abi_write = abiRun(b, abi_gen, "write");
    b.step("abi", "Regenerate zig/hakmem.h's constants and src/abi.ts from zig/abi.zig").dependOn(&abi_write.step);

    // For C programs that link libhakmem.so instead of preloading it.
    const header = b.addInstallHeaderFile(b.path("zig/hakmem.h"), "hakmem.h");
    header.step.dependOn(&abi_check.step);
    b.getInstallStep().dependOn(&header.step);
    const pc = b.addWriteFiles().add("hakmem.pc", pkgConfig(b));
    b.getInstallStep().dependOn(&b.addInstallLibFile(pc, "pkgconfig/hakmem.pc").step);

    // The unit tests (validators included) run twice: in Debug, and optimized with the
    // safety checks kept (ReleaseSafe), so code that only misbehaves optimized is caught.
    const test_step = b.step("test", "Run the Zig unit tests (Debug and ReleaseSafe)");
    const test_options = buildOptions(b, build_id, true);
    const test_filters = b.option([]const []const u8, "test-filter", "Run only the unit tests whose names contain this") orelse &.{};
    for ([_]std.builtin.OptimizeMode{ .Debug, .ReleaseSafe }) |mode| {
        const test_module = b.createModule(.{
            .root_source_file = b.path("zig/lib.zig"),
            .target = target,
            .optimize = mode,
            .link_libc = true,
        });
        test_module.addOptions("build_options", test_options);
        const unit_tests = b.addTest(.{ .root_module = test_module, .use_llvm = true, .filters = test_filters });
        const run_tests = b.addRunArtifact(unit_tests);
        test_step.dependOn(&run_tests.step);
    }
    test_step.dependOn(&abi_check.step);
}

/// The library's build_options: its version, the source hash, and whether it is the checked
/// library (zig/thread/validate.zig runs the validators; the unit tests are built checked too).
fn buildOptions(b: *std.Build, build_id: []const u8, checked: bool) *std.Build.Step.Options {
    const options = b.addOptions();
    options.addOption([]const u8, "version", version);
    options.addOption([]const u8, "build_id", build_id);
    options.addOption(bool, "checked", checked);
    return options;
}

fn abiRun(b: *std.Build, gen: *std.Build.Step.Compile, mode: []const u8) *std.Build.Step.Run {
    const run = b.addRunArtifact(gen);
    run.addArg(mode);
    run.addArg(b.pathFromRoot("zig/hakmem.h"));
    run.addArg(b.pathFromRoot("src/abi.ts"));
    run.has_side_effects = true; // reads and writes source files: never cached
    return run;
}

/// hakmem.pc with absolute paths (the install prefix): `pkg-config --cflags --libs hakmem`
/// gives -I, -L, -lhakmem and an rpath, so the program finds the library when it starts
/// without LD_LIBRARY_PATH. Rebuild after moving the tree.
fn pkgConfig(b: *std.Build) []const u8 {
    const prefix = b.install_prefix;
    return b.fmt(
        \\prefix={s}
        \\libdir=${{prefix}}/lib
        \\includedir=${{prefix}}/include
        \\
        \\Name: hakmem
        \\Description: hakmem, a general-purpose memory allocator (linking it replaces malloc/free for the whole program)
        \\Version: {s}
        \\Cflags: -I${{includedir}}
        \\Libs: -L${{libdir}} -Wl,-rpath,${{libdir}} -lhakmem
        \\
    , .{ prefix, version });
}

fn defaultTarget() std.Target.Query {
    if (@import("builtin").cpu.arch != .x86_64) return .{};
    return .{ .cpu_model = .{ .explicit = &std.Target.x86.cpu.x86_64_v3 } };
}

/// A short hash of every file under zig/ (names and contents): the build id that the
/// bench records, so a number can always be traced to the sources that produced it.
fn sourceHash(b: *std.Build) []const u8 {
    var hasher = std.hash.Wyhash.init(0);
    var dir = std.fs.cwd().openDir(b.pathFromRoot("zig"), .{ .iterate = true }) catch return "unknown";
    defer dir.close();
    var walker = dir.walk(b.allocator) catch return "unknown";
    defer walker.deinit();
    var names: std.ArrayList([]const u8) = .empty;
    while (walker.next() catch null) |entry| {
        if (entry.kind != .file) continue;
        if (!std.mem.endsWith(u8, entry.path, ".zig") and !std.mem.endsWith(u8, entry.path, ".h")) continue;
        names.append(b.allocator, b.dupe(entry.path)) catch return "unknown";
    }
    std.mem.sort([]const u8, names.items, {}, struct {
        fn lessThan(_: void, a: []const u8, c: []const u8) bool {
            return std.mem.lessThan(u8, a, c);
        }
    }.lessThan);
    for (names.items) |name| {
        hasher.update(name);
        const bytes = dir.readFileAlloc(b.allocator, name, 16 << 20) catch return "unknown";
        hasher.update(bytes);
    }
    return b.fmt("{x:0>16}", .{hasher.final()});
}

/// The module of a shared library of this project (libhakmem.so, libhakmem_kernels.so):
/// position-independent, on libc, no stack probes (compiler_rt is not bundled).
fn sharedLibraryModule(b: *std.Build, root: []const u8, target: std.Build.ResolvedTarget, optimize: std.builtin.OptimizeMode) *std.Build.Module {
    return b.createModule(.{
        .root_source_file = b.path(root),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
        .pic = true,
        .omit_frame_pointer = optimize == .ReleaseFast,
        .stack_check = false, // no __zig_probe_stack: compiler_rt is not bundled
    });
}

/// The root source file of a tool of zig/tools/ (lib.zig's `tools`). A tool imports
/// ../abi.zig, and Zig resolves no import above the folder of a module's root file; so the
/// tool is compiled from a copy of zig/abi.zig and zig/tools/<name>.zig in the build cache,
/// laid out as in zig/, under a generated root beside them that only refers to the tool.
/// (The unit tests compile the tools in place: lib.zig imports them.)
fn toolRoot(b: *std.Build, name: []const u8, kind: enum { library, executable }) std.Build.LazyPath {
    const files = b.addWriteFiles();
    _ = files.addCopyFile(b.path("zig/abi.zig"), "abi.zig");
    const tool = b.fmt("tools/{s}.zig", .{name});
    _ = files.addCopyFile(b.path(b.fmt("zig/{s}", .{tool})), tool);
    return files.add(b.fmt("{s}_root.zig", .{name}), switch (kind) {
        .library => b.fmt("comptime {{\n    _ = @import(\"{s}\");\n}}\n", .{tool}),
        .executable => b.fmt("pub const main = @import(\"{s}\").main;\n", .{tool}),
    });
}
