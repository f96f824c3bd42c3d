using System.Runtime.InteropServices;
using System.Text;

namespace RetriBooru.Runtime;

/// <summary>
/// Reads weights, configs and tokenizer files only when they are regular files of a bounded size: opening a named
/// pipe blocks until some writer appears (forever), and a device never ends. The check runs before the open.
/// </summary>
public static partial class RegularFile
{
    /// <summary>Throws unless <paramref name="path"/> is an existing regular file (symbolic links are followed).</summary>
    public static void Require(string path, string what)
    {
        if (Directory.Exists(path)) throw new InvalidDataException($"{path}: is a folder, not a {what}");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such {what}", path);
        var kind = FileKind(path);
        if (kind is not null) throw new InvalidDataException($"{path}: is a {kind}, not a regular file; refusing to read it as a {what}");
    }

    /// <summary>Opens a checked regular file for reading.</summary>
    public static FileStream OpenRead(string path, string what, int bufferSize = 1 << 16)
    {
        Require(path, what);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize);
    }

    /// <summary>Reads a checked regular file as UTF-8 text, refusing one larger than <paramref name="maxBytes"/>.</summary>
    public static string ReadAllText(string path, string what, long maxBytes = SizeLimits.MaxConfigFileBytes)
    {
        using var stream = OpenRead(path, what);
        if (stream.Length > maxBytes) throw new InvalidDataException($"{path}: {stream.Length} bytes, more than the {maxBytes}-byte limit for a {what}");
        try { return new StreamReader(stream, new UTF8Encoding(false, throwOnInvalidBytes: true)).ReadToEnd(); }
        catch (DecoderFallbackException) { throw new InvalidDataException($"{path}: not UTF-8 text; a {what} must be UTF-8"); }
    }

    /// <summary>"named pipe", "character device", ... for a file that is not regular; null for a regular file (or when unknown).</summary>
    static string? FileKind(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        var buffer = new byte[256]; // struct statx: the same layout on every Linux architecture
        try
        {
            if (Statx(AtCurrentDirectory, path, 0, StatxType, buffer) != 0) return null;
        }
        catch (EntryPointNotFoundException) { return null; } // glibc before 2.28
        int mode = BitConverter.ToUInt16(buffer, 28) & 0xF000;
        return mode switch
        {
            0x8000 => null,
            0x1000 => "named pipe (FIFO)",
            0x2000 => "character device",
            0x6000 => "block device",
            0xC000 => "socket",
            0x4000 => "folder",
            _ => $"special file (mode 0x{mode:x})",
        };
    }

    const int AtCurrentDirectory = -100;
    const uint StatxType = 1;

    [LibraryImport("libc.so.6", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, byte[] buffer);
}
