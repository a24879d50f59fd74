"""letter_tree writes one file per letter of its input into an output
directory, so that castd has to store and return a Tree."""

def _letter_tree_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    ctx.actions.run_shell(
        inputs = [ctx.file.src],
        outputs = [out],
        command = "mkdir -p \"$2/sub\" && head -c 5 \"$1\" > \"$2/first5.txt\" && wc -c < \"$1\" | tr -d ' ' > \"$2/sub/size.txt\"",
        arguments = [ctx.file.src.path, out.path],
        mnemonic = "LetterTree",
    )
    return [DefaultInfo(files = depset([out]))]

letter_tree = rule(
    implementation = _letter_tree_impl,
    attrs = {"src": attr.label(allow_single_file = True)},
)
