const std = @import("std");
const build_options = @import("build_options");

const version_z: [:0]const u8 = build_options.version ++ "";
const build_id_z: [:0]const u8 = build_options.build_id ++ "";
export fn hak_version() [*:0]const u8 {
    return version_z.ptr;
}
export fn hak_build_id() [*:0]const u8 {
    return build_id_z.ptr;
}
test "builds" {}
