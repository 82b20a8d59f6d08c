#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate libcuda.so.1's entry-point table from the toolkit's own headers.

    gen-entry-points.py CUDA_INCLUDE_DIR OUT.c SOURCE.c...

Reads cuda.h (preprocessed by the C compiler with __CUDA_API_VERSION_INTERNAL,
which declares every exported symbol: current, legacy and the per-thread
default-stream "_ptds"/"_ptsz" twins) and cudaTypedefs.h (whose
PFN_<name>_v<version> typedefs give the CUDA version at which each variant of
a name appeared). For every symbol it emits:

  - nothing, when one of SOURCE.c defines it ("CUresult CUDAAPI name(" at the
    start of a line: implemented by hand);
  - for a _ptds/_ptsz twin of an implemented symbol, a wrapper that calls it
    with the NULL stream meaning the calling thread's per-thread stream;
  - otherwise a stub with the exact signature that returns
    CUDA_ERROR_NOT_SUPPORTED and logs the name once (every call, with its
    arguments, at VGPU_CUDA_TRACE >= 2).

For each symbol the table offers that is not a stub, a tracing twin with the
same signature: it calls the symbol and logs the call, with its arguments and
result, when the result is not CUDA_SUCCESS (every call at VGPU_CUDA_TRACE >=
3). cuGetProcAddress hands out the twin instead of the symbol when
VGPU_CUDA_TRACE >= 2, so that the default path pays nothing for it.

And the table cuGetProcAddress searches: (name, minimum version, ptds, fn,
traced fn), plus the CUresult names (cuGetErrorName).
"""
import os
import re
import subprocess
import sys


def preprocess(incdir, cc):
    src = '#include <cuda.h>\n#include <cudaProfiler.h>\n'
    out = subprocess.run(cc + ['-E', '-P', '-D__CUDA_API_VERSION_INTERNAL',
                               '-I' + incdir, '-x', 'c', '-'],
                         input=src, capture_output=True, text=True, check=True)
    return out.stdout


def parse_decls(text):
    decls = {}
    for m in re.finditer(r'\bCUresult\s+(cu\w+)\s*\(([^;{]*?)\)\s*(?:__attribute__\s*\(\([^;]*\)\))?\s*;',
                         text, re.S):
        name, params = m.group(1), ' '.join(m.group(2).split())
        decls.setdefault(name, params)
    return decls


def parse_errors(text):
    m = re.search(r'enum cudaError_enum\s*\{(.*?)\}', text, re.S)
    return [(n, int(v)) for n, v in re.findall(r'(CUDA_\w+)\s*=\s*(\d+)', m.group(1))]


def parse_versions(path):
    vers = {}
    with open(path) as f:
        for m in re.finditer(r'\*\s*PFN_(cu\w+?)_v(\d+)(_ptds|_ptsz)?\)', f.read()):
            vers.setdefault((m.group(1), bool(m.group(3))), set()).add(int(m.group(2)))
    return vers


def variants(decls, base, ptds):
    """Declared symbols of one name, oldest first: base, base_v2, base_v3..."""
    out = []
    for name in decls:
        m = re.fullmatch(re.escape(base) + r'(?:_v(\d+))?' + (r'_(?:ptds|ptsz)' if ptds else ''), name)
        if m:
            out.append((int(m.group(1) or 1), name))
    return [n for _, n in sorted(out)]


def param_names(params):
    if params.strip() in ('', 'void'):
        return []
    names = []
    for p in params.split(','):
        m = re.search(r'(\w+)\s*(\[[^\]]*\])?\s*$', p.strip())
        names.append(m.group(1))
    return names


def main():
    incdir, out_path, sources = sys.argv[1], sys.argv[2], sys.argv[3:]
    cc = os.environ.get('CC', 'cc').split()
    text = preprocess(incdir, cc)
    decls = parse_decls(text)
    errors = parse_errors(text)
    vers = parse_versions(os.path.join(incdir, 'cudaTypedefs.h'))
    for k, v in parse_versions(os.path.join(incdir, 'cudaProfilerTypedefs.h')).items():
        vers.setdefault(k, set()).update(v)

    implemented = set()
    for s in sources:
        with open(s) as f:
            text = f.read()
            implemented |= set(re.findall(r'^VGPU_CU_EXPORT CUresult CUDAAPI (cu\w+)\(', text, re.M))
            implemented |= set(re.findall(r'^MEMSET(?:2D)?\((cu\w+),', text, re.M))
    missing = implemented - set(decls)
    if missing:
        sys.exit('gen-entry-points: not in cuda.h: ' + ', '.join(sorted(missing)))

    # name -> [(min_version, ptds, symbol)]
    table = []
    bases = {b for b, _ in vers}
    for base in sorted(bases):
        for ptds in (False, True):
            vs = sorted(vers.get((base, ptds), ()))
            syms = variants(decls, base, ptds)
            if not vs or not syms:
                continue
            # newest version <-> newest variant; older versions without a
            # declared variant of their own are not offered
            for v, s in zip(reversed(vs), reversed(syms)):
                table.append((base, v, ptds, s))
    # declared names without a PFN typedef: offered from any version
    covered = {s for *_, s in table}
    for name in sorted(decls):
        if name in covered or re.search(r'_v\d+$|_pt(ds|sz)$', name):
            continue
        if not any(t[0] == name for t in table):
            table.append((name, 0, False, name))

    def trace_call(name, params, result, indent):
        names = param_names(params)
        pad = ' ' * indent
        if not names:
            return f'{pad}cu_trace_call("{name}", NULL, 0, {result});\n'
        args = ', '.join(f'CU_TRACE_ARG({n})' for n in names)
        return (f'{pad}const struct cu_trace_arg a_[] = {{ {args} }};\n\n'
                f'{pad}cu_trace_call("{name}", a_, {len(names)}, {result});\n')

    o = []
    w = o.append
    w('/* Generated by gen-entry-points.py from cuda.h and cudaTypedefs.h: do not edit. */')
    w('#define __CUDA_API_VERSION_INTERNAL 1')
    w('#include "cuda_internal.h"')
    w('#include <cudaProfiler.h>')
    w('')
    stubs = set()
    for name in sorted(decls):
        if name in implemented:
            continue
        params = decls[name]
        m = re.fullmatch(r'(\w+?)_pt(ds|sz)', name)
        if m and m.group(1) in implemented:
            args = ', '.join(param_names(params))
            w(f'VGPU_CU_EXPORT CUresult CUDAAPI {name}({params})\n{{\n'
              f'    CUresult r;\n\n    cu_ptds_enter();\n    r = {m.group(1)}({args});\n'
              f'    cu_ptds_leave();\n    return r;\n}}\n')
        else:
            stubs.add(name)
            w(f'VGPU_CU_EXPORT CUresult CUDAAPI {name}({params})\n{{\n'
              f'    if (cu_trace() >= 2) {{\n'
              + trace_call(name, params, 'CUDA_ERROR_NOT_SUPPORTED', 8) +
              f'    }}\n    return vgpu_cu_unsupported("{name}");\n}}\n')
    # the tracing twins (VGPU_CUDA_TRACE >= 2): stubs trace themselves
    traced = sorted({s for *_, s in table} - stubs)
    for name in traced:
        params = decls[name]
        args = ', '.join(param_names(params))
        w(f'static CUresult CUDAAPI cu_traced_{name}({params})\n{{\n'
          f'    CUresult r = {name}({args});\n\n'
          f'    if (r != CUDA_SUCCESS || cu_trace() >= 3) {{\n'
          + trace_call(name, params, 'r', 8) +
          f'    }}\n    return r;\n}}\n')
    # sorted by name in strcmp's order: cuGetProcAddress searches it by halves
    w('const struct cu_proc cu_procs[] = {')
    for base, v, ptds, s in sorted(table, key=lambda t: (t[0].encode(), t[1], t[2])):
        t = s if s in stubs else 'cu_traced_' + s
        w(f'    {{ "{base}", {v}, {1 if ptds else 0}, (void *){s}, (void *){t} }},')
    w('};')
    w(f'const unsigned cu_procs_count = {len(table)};')
    w('')
    w('const struct cu_error_name cu_error_names[] = {')
    for n, v in errors:
        w(f'    {{ {v}, "{n}" }},')
    w('};')
    w(f'const unsigned cu_error_names_count = {len(errors)};')
    with open(out_path, 'w') as f:
        f.write('\n'.join(o) + '\n')


if __name__ == '__main__':
    main()
