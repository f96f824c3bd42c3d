using System.Buffers.Binary;
using System.Text;

namespace RetriBooru.Runtime;

/// <summary>One version a shared object requires from one of its dependencies (an entry of <c>.gnu.version_r</c>).</summary>
/// <param name="File">The dependency's soname, e.g. <c>libstdc++.so.6</c>.</param>
/// <param name="Name">The version name, e.g. <c>GLIBCXX_3.4.32</c>.</param>
/// <param name="Flags">The <c>vna_flags</c> field; bit 0x2 is VER_FLG_WEAK.</param>
/// <param name="FlagsOffset">Byte offset of <c>vna_flags</c> in the file.</param>
public sealed record VersionRequirement(string File, string Name, ushort Flags, long FlagsOffset)
{
    public bool IsWeak => (Flags & ElfSymbolVersions.VerFlagWeak) != 0;
}

/// <summary>
/// A minimal reader of ELF64 little-endian symbol-versioning sections: the versions a library
/// requires (<c>.gnu.version_r</c>) and the versions it defines (<c>.gnu.version_d</c>).
/// It exists so that the libstdc++ fix for TorchSharp can be applied in managed code, without binutils.
/// Every offset read from the file is bounds-checked: a truncated or hostile file is an
/// <see cref="InvalidDataException"/> that names the file, never an out-of-range read.
/// </summary>
public static class ElfSymbolVersions
{
    public const ushort VerFlagWeak = 0x2;
    const uint ShtGnuVerdef = 0x6ffffffd;
    const uint ShtGnuVerneed = 0x6ffffffe;

    /// <summary>Every (dependency, version) pair the ELF file requires.</summary>
    public static IReadOnlyList<VersionRequirement> ReadRequirements(string path) =>
        ReadRequirements(File.ReadAllBytes(path), path);

    public static IReadOnlyList<VersionRequirement> ReadRequirements(byte[] elf, string pathForErrors)
    {
        var reader = new Reader(elf, pathForErrors);
        var result = new List<VersionRequirement>();
        foreach (var section in reader.Sections(ShtGnuVerneed))
        {
            var strtab = reader.Section(section.Link);
            long entry = section.Offset;
            // sh_info holds the number of Verneed entries; bound the walk by it so a cyclic vn_next cannot loop forever.
            for (uint i = 0; i < section.Info; i++)
            {
                reader.Require(entry, 16, "Verneed entry");
                ushort count = reader.U16(entry + 2);
                string file = reader.String(strtab, reader.U32(entry + 4));
                long aux = entry + reader.U32(entry + 8);
                for (int j = 0; j < count; j++)
                {
                    reader.Require(aux, 16, "Vernaux entry");
                    ushort flags = reader.U16(aux + 4);
                    string name = reader.String(strtab, reader.U32(aux + 8));
                    result.Add(new VersionRequirement(file, name, flags, aux + 4));
                    uint nextAux = reader.U32(aux + 12);
                    if (nextAux == 0) break;
                    aux += nextAux;
                }
                uint next = reader.U32(entry + 12);
                if (next == 0) break;
                entry += next;
            }
        }
        return result;
    }

    /// <summary>Every version name the ELF file defines (for libstdc++: GLIBCXX_3.4, ..., GLIBCXX_3.4.30, CXXABI_...).</summary>
    public static IReadOnlySet<string> ReadDefinitions(string path)
    {
        var reader = new Reader(File.ReadAllBytes(path), path);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var section in reader.Sections(ShtGnuVerdef))
        {
            var strtab = reader.Section(section.Link);
            long entry = section.Offset;
            for (uint i = 0; i < section.Info; i++)
            {
                reader.Require(entry, 20, "Verdef entry");
                ushort auxCount = reader.U16(entry + 6);
                long aux = entry + reader.U32(entry + 12);
                // The first Verdaux names the version itself; the others name its parents.
                if (auxCount > 0)
                {
                    reader.Require(aux, 8, "Verdaux entry");
                    names.Add(reader.String(strtab, reader.U32(aux)));
                }
                uint next = reader.U32(entry + 16);
                if (next == 0) break;
                entry += next;
            }
        }
        return names;
    }

    /// <summary>
    /// Returns a copy of <paramref name="elf"/> in which the requirement on <paramref name="versionName"/>
    /// is marked VER_FLG_WEAK, so that the dynamic loader tolerates its absence. Only the two bytes of
    /// that entry's <c>vna_flags</c> can differ from the input. Returns null when the file has no such requirement.
    /// </summary>
    public static byte[]? WithWeakRequirement(byte[] elf, string versionName, string pathForErrors)
    {
        var target = ReadRequirements(elf, pathForErrors).Where(r => r.Name == versionName).ToList();
        if (target.Count == 0) return null;
        var copy = (byte[])elf.Clone();
        foreach (var requirement in target)
            BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(checked((int)requirement.FlagsOffset)), (ushort)(requirement.Flags | VerFlagWeak));
        return copy;
    }

    readonly record struct SectionHeader(uint Type, long Offset, long Size, uint Link, uint Info);

    sealed class Reader
    {
        readonly byte[] _data;
        readonly string _path;
        readonly SectionHeader[] _sections;

        public Reader(byte[] data, string path)
        {
            _data = data;
            _path = path;
            if (data.Length < 64 || data[0] != 0x7f || data[1] != (byte)'E' || data[2] != (byte)'L' || data[3] != (byte)'F')
                throw Bad("not an ELF file");
            if (data[4] != 2) throw Bad("not a 64-bit ELF file (only ELF64 is supported)");
            if (data[5] != 1) throw Bad("not a little-endian ELF file");
            long shoff = checked((long)U64(0x28));
            ushort shentsize = U16(0x3A);
            ushort shnum = U16(0x3C);
            if (shnum == 0) { _sections = []; return; }
            if (shentsize < 64) throw Bad($"section header entry size {shentsize} is too small");
            Require(shoff, (long)shentsize * shnum, "section header table");
            _sections = new SectionHeader[shnum];
            for (int i = 0; i < shnum; i++)
            {
                long h = shoff + (long)i * shentsize;
                _sections[i] = new SectionHeader(U32(h + 4), checked((long)U64(h + 0x18)), checked((long)U64(h + 0x20)), U32(h + 0x28), U32(h + 0x2C));
            }
        }

        public IEnumerable<SectionHeader> Sections(uint type) => _sections.Where(s => s.Type == type);

        public SectionHeader Section(uint index)
        {
            if (index >= _sections.Length) throw Bad($"section link {index} is out of range");
            var s = _sections[index];
            Require(s.Offset, s.Size, "string table");
            return s;
        }

        public string String(SectionHeader strtab, uint offset)
        {
            if (offset >= strtab.Size) throw Bad($"string offset {offset} is outside its string table");
            long start = strtab.Offset + offset;
            long end = start;
            long limit = strtab.Offset + strtab.Size;
            while (end < limit && _data[end] != 0) end++;
            if (end == limit) throw Bad("unterminated string in string table");
            return Encoding.ASCII.GetString(_data, (int)start, (int)(end - start));
        }

        public void Require(long offset, long length, string what)
        {
            if (offset < 0 || length < 0 || offset > _data.Length - length)
                throw Bad($"{what} at offset {offset} (+{length} bytes) lies outside the file ({_data.Length} bytes)");
        }

        public ushort U16(long o) { Require(o, 2, "field"); return BinaryPrimitives.ReadUInt16LittleEndian(_data.AsSpan((int)o)); }
        public uint U32(long o) { Require(o, 4, "field"); return BinaryPrimitives.ReadUInt32LittleEndian(_data.AsSpan((int)o)); }
        public ulong U64(long o) { Require(o, 8, "field"); return BinaryPrimitives.ReadUInt64LittleEndian(_data.AsSpan((int)o)); }

        InvalidDataException Bad(string problem) => new($"{_path}: {problem}");
    }
}
