using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using RetriBooru.Runtime;
using static TorchSharp.torch;

namespace RetriBooru.Weights;

/// <summary>A safetensors file is malformed or unsafe to read; the message names the file and the problem.</summary>
public sealed class SafeTensorsFormatException(string message) : IOException(message);

/// <summary>One tensor's header entry: dtype name, shape, and byte range within the data section.</summary>
public sealed record SafeTensorEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// The safetensors format, read and written by our own code: an 8-byte little-endian header length N, N bytes
/// of JSON header (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}</c>),
/// then the raw little-endian tensor bytes. The reader validates every entry against the file size before
/// allocating anything and streams each tensor's bytes straight into its storage.
/// </summary>
public static class SafeTensors
{
    /// <summary>Headers larger than this are rejected (real SD checkpoints have headers of ~100 KB).</summary>
    public const long MaxHeaderBytes = SizeLimits.MaxSafeTensorsHeaderBytes;

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    public static string DTypeName(ScalarType type) =>
        DTypes.FirstOrDefault(kv => kv.Value.Type == type).Key ?? throw new ArgumentException($"dtype {type} cannot be stored in safetensors by this writer");

    public static ScalarType ScalarTypeOf(string dtype) =>
        DTypes.TryGetValue(dtype, out var t) ? t.Type : throw new ArgumentException($"unsupported safetensors dtype '{dtype}'");

    /// <summary>Writes tensors (any device, any layout; stored contiguous on CPU) and optional string metadata, atomically.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        TorchRuntime.EnsureLoaded();
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, _) in list)
        {
            if (name == "__metadata__") throw new ArgumentException($"{path}: tensor name '__metadata__' is reserved");
            if (!names.Add(name)) throw new ArgumentException($"{path}: duplicate tensor name '{name}'");
        }

        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) json.WriteString(k, v);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in list)
            {
                long bytes = tensor.numel() * tensor.ElementSize;
                json.WriteStartObject(name);
                json.WriteString("dtype", DTypeName(tensor.dtype));
                json.WriteStartArray("shape");
                foreach (var d in tensor.shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        // Pad the header with spaces so the data section starts 8-byte aligned (as the reference writer does).
        while (buffer.Length % 8 != 0) buffer.WriteByte((byte)' ');
        var header = buffer.ToArray();

        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var (_, tensor) in list)
            {
                // The scope holds the chain's intermediates: an unreferenced one could be finalised during the next native call.
                using var scope = NewDisposeScope();
                var cpu = tensor.detach().to(CPU).contiguous();
                if (cpu.numel() > 0) cpu.WriteBytesToStream(stream, 1 << 20);
            }
        });
    }

    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Save(path, tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal), metadata);

    /// <summary>Reads every tensor of a file (CPU, stored dtype).</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        return file.Entries.Keys.ToDictionary(name => name, name => file.Read(name), StringComparer.Ordinal);
    }

    internal static (int Size, ScalarType Type) Describe(string dtype) =>
        DTypes.TryGetValue(dtype, out var d) ? (d.Size, d.Type) : throw new KeyNotFoundException(dtype);

    internal static bool IsKnownDType(string dtype) => DTypes.ContainsKey(dtype);
}

/// <summary>An open, validated safetensors file; tensors are read on demand.</summary>
public sealed class SafeTensorsFile : IDisposable
{
    readonly FileStream stream;
    readonly long dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafeTensorEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafeTensorsFile(string path, FileStream stream, long dataStart, Dictionary<string, SafeTensorEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path;
        this.stream = stream;
        this.dataStart = dataStart;
        Entries = entries;
        Metadata = metadata;
    }

    /// <summary>Opens and validates a file. Throws <see cref="SafeTensorsFormatException"/> naming the file and the problem.</summary>
    public static SafeTensorsFile Open(string path)
    {
        var stream = RegularFile.OpenRead(path, "safetensors file");
        try
        {
            var (dataStart, entries, metadata) = ReadHeader(path, stream);
            return new SafeTensorsFile(path, stream, dataStart, entries, metadata);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    static (long, Dictionary<string, SafeTensorEntry>, Dictionary<string, string>) ReadHeader(string path, FileStream stream)
    {
        SafeTensorsFormatException Bad(string problem) => new($"{path}: not a valid safetensors file: {problem}");

        long fileLength = stream.Length;
        if (fileLength < 8) throw Bad($"{fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)SafeTensors.MaxHeaderBytes) throw Bad($"header length {headerLength} exceeds the {SafeTensors.MaxHeaderBytes}-byte limit");
        if (headerLength > (ulong)(fileLength - 8)) throw Bad($"header length {headerLength} runs past the end of the {fileLength}-byte file");
        if (headerLength < 2) throw Bad($"header length {headerLength} is too small for a JSON object");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        if (!System.Text.Unicode.Utf8.IsValid(headerBytes)) throw Bad("header is not UTF-8 text");

        JsonDocument doc;
        try { doc = JsonDocument.Parse(headerBytes, new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException e) { throw Bad($"header is not valid JSON ({e.Message})"); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("header is not a JSON object");

        var entries = new Dictionary<string, SafeTensorEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in doc.RootElement.EnumerateObject())
        {
            if (property.Name == "__metadata__")
            {
                if (property.Value.ValueKind != JsonValueKind.Object) throw Bad("__metadata__ is not an object");
                foreach (var m in property.Value.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.String) throw Bad($"__metadata__.{m.Name} is not a string");
                    metadata[m.Name] = m.Value.GetString()!;
                }
                continue;
            }
            if (entries.ContainsKey(property.Name)) throw Bad($"tensor '{property.Name}' is listed twice");
            entries[property.Name] = ParseEntry(property, dataLength, Bad);
        }

        // Byte ranges must not overlap (a crafted file could alias one range for many tensors).
        SafeTensorEntry? previous = null;
        foreach (var entry in entries.Values.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin))
        {
            if (previous is not null && entry.Begin < previous.End)
                throw Bad($"tensors '{previous.Name}' [{previous.Begin}, {previous.End}) and '{entry.Name}' [{entry.Begin}, {entry.End}) overlap");
            previous = entry;
        }
        return (dataStart, entries, metadata);
    }

    static SafeTensorEntry ParseEntry(JsonProperty property, long dataLength, Func<string, SafeTensorsFormatException> bad)
    {
        var name = property.Name;
        var value = property.Value;
        if (value.ValueKind != JsonValueKind.Object) throw bad($"entry '{name}' is not an object");
        if (!value.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw bad($"tensor '{name}' has no dtype string");
        var dtype = dtypeElement.GetString()!;
        if (!SafeTensors.IsKnownDType(dtype)) throw bad($"tensor '{name}' has unsupported dtype '{dtype}'");
        if (!value.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw bad($"tensor '{name}' has no shape array");
        if (shapeElement.GetArrayLength() > SizeLimits.MaxTensorDimensions) throw bad($"tensor '{name}' has {shapeElement.GetArrayLength()} dimensions, more than {SizeLimits.MaxTensorDimensions}");
        var shape = new List<long>();
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw bad($"tensor '{name}' has an invalid shape dimension {d}");
            shape.Add(dim);
        }
        if (!value.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw bad($"tensor '{name}' has no [begin, end] data_offsets");
        if (offsets[0].ValueKind != JsonValueKind.Number || offsets[1].ValueKind != JsonValueKind.Number)
            throw bad($"tensor '{name}' has data_offsets [{offsets[0].GetRawText()}, {offsets[1].GetRawText()}] that are not integers");
        if (!offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw bad($"tensor '{name}' has invalid data_offsets [{offsets[0]}, {offsets[1]}]");
        if (end > dataLength)
            throw bad($"tensor '{name}' data_offsets [{begin}, {end}) lie outside the {dataLength}-byte data section");
        var (size, _) = SafeTensors.Describe(dtype);
        System.Numerics.BigInteger expected = size;
        foreach (var d in shape) expected *= d;
        if (expected != end - begin)
            throw bad($"tensor '{name}' shape [{string.Join(", ", shape)}] x {dtype} needs {expected} bytes but data_offsets give {end - begin}");
        return new SafeTensorEntry(name, dtype, shape.ToArray(), begin, end);
    }

    /// <summary>Reads one tensor onto the CPU in its stored dtype (validated sizes only; streamed in 1 MB chunks).</summary>
    public Tensor Read(string name)
    {
        if (!Entries.TryGetValue(name, out var entry)) throw new KeyNotFoundException($"{Path}: no tensor '{name}'");
        var (_, type) = SafeTensors.Describe(entry.DType);
        var result = empty(entry.Shape, dtype: type, device: CPU);
        if (entry.ByteLength == 0) return result;
        try
        {
            lock (stream)
            {
                stream.Seek(dataStart + entry.Begin, SeekOrigin.Begin);
                result.ReadBytesFromStream(stream, 1 << 20);
            }
        }
        catch (EndOfStreamException)
        {
            result.Dispose();
            throw new SafeTensorsFormatException($"{Path}: tensor '{name}' is truncated");
        }
        return result;
    }

    public void Dispose() => stream.Dispose();
}
