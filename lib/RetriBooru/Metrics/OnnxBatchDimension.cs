using System.Text;

namespace RetriBooru.Metrics;

/// <summary>
/// Frees the batch dimension of an ONNX model whose exporter fixed it to 1 (the CNTK export of ResNet18 declares its
/// input [1,3,224,224] and output [1,512,1,1], and ONNX Runtime refuses any other first dimension). The declared shape
/// of every graph input (other than the weights some exporters also list as inputs) and every output gets a symbolic
/// first dimension, and the graph's <c>value_info</c> (optional shape
/// hints, all with batch 1) is dropped; nodes, weights and everything else are copied byte for byte. Nothing in the
/// graph depends on the batch size (checked: a batch of N gives exactly the N single-image outputs, see the tests).
/// A minimal protobuf walk, so no ONNX package is needed.
/// </summary>
static class OnnxBatchDimension
{
    const string BatchName = "N";

    // Field numbers of onnx.proto3.
    const int ModelGraph = 7;
    const int GraphInitializer = 5, GraphInput = 11, GraphOutput = 12, GraphValueInfo = 13;
    const int InitializerName = 8;
    const int ValueInfoName = 1, ValueInfoType = 2;
    const int TypeTensor = 1, TensorShape = 2, ShapeDim = 1, DimParam = 2;
    const int LengthDelimited = 2;

    /// <summary>The model bytes with the first dimension of its inputs and outputs made symbolic.</summary>
    public static byte[] Free(byte[] model)
    {
        bool sawGraph = false;
        var rewritten = Rewrite(model, 0, model.Length, (field, start, end) =>
        {
            if (field != ModelGraph) return null;
            sawGraph = true;
            return Graph(model, start, end);
        });
        if (!sawGraph) throw new InvalidDataException("not an ONNX model: no graph");
        return rewritten;
    }

    static byte[] Graph(byte[] b, int start, int end)
    {
        var fields = Fields(b, start, end);
        var weights = fields.Where(f => f.Number == GraphInitializer && f.Wire == LengthDelimited)
            .Select(f => NameOf(b, f, InitializerName)).OfType<string>().ToHashSet(StringComparer.Ordinal);
        int inputs = 0, outputs = 0;
        using var result = new MemoryStream(end - start);
        foreach (var f in fields)
        {
            if (f.Number == GraphValueInfo) continue;
            bool data = f.Wire == LengthDelimited && (f.Number == GraphOutput || f.Number == GraphInput && !weights.Contains(NameOf(b, f, ValueInfoName) ?? ""));
            if (!data)
            {
                result.Write(b, f.Start, f.End - f.Start);
                continue;
            }
            WriteLengthDelimited(result, f.Number, ValueInfo(b, f.PayloadStart, f.PayloadEnd));
            if (f.Number == GraphInput) inputs++; else outputs++;
        }
        if (inputs == 0 || outputs == 0) throw new InvalidDataException($"ONNX graph: {inputs} data input(s) and {outputs} output(s); expected at least one of each");
        return result.ToArray();
    }

    static byte[] ValueInfo(byte[] b, int start, int end) => Rewrite(b, start, end, (field, s, e) =>
        field != ValueInfoType ? null : Rewrite(b, s, e, (typeField, ts, te) =>
            typeField != TypeTensor ? null : Rewrite(b, ts, te, (tensorField, ss, se) =>
                tensorField != TensorShape ? null : SymbolicFirstDimension(b, ss, se))));

    static byte[] SymbolicFirstDimension(byte[] b, int start, int end)
    {
        using var result = new MemoryStream();
        bool first = true;
        foreach (var f in Fields(b, start, end))
        {
            if (first && f.Number == ShapeDim)
            {
                first = false;
                using var dim = new MemoryStream();
                WriteLengthDelimited(dim, DimParam, Encoding.UTF8.GetBytes(BatchName));
                WriteLengthDelimited(result, ShapeDim, dim.ToArray());
                continue;
            }
            result.Write(b, f.Start, f.End - f.Start);
        }
        return result.ToArray();
    }

    /// <summary>Copies a message, replacing the payload of each length-delimited field for which <paramref name="replace"/> returns bytes.</summary>
    static byte[] Rewrite(byte[] b, int start, int end, Func<int, int, int, byte[]?> replace)
    {
        using var result = new MemoryStream(end - start);
        foreach (var f in Fields(b, start, end))
        {
            var payload = f.Wire == LengthDelimited ? replace(f.Number, f.PayloadStart, f.PayloadEnd) : null;
            if (payload is null) result.Write(b, f.Start, f.End - f.Start);
            else WriteLengthDelimited(result, f.Number, payload);
        }
        return result.ToArray();
    }

    readonly record struct Field(int Number, int Wire, int Start, int End, int PayloadStart, int PayloadEnd);

    /// <summary>The string field <paramref name="nameField"/> of a message (a value info's or a weight's name).</summary>
    static string? NameOf(byte[] b, Field message, int nameField)
    {
        foreach (var f in Fields(b, message.PayloadStart, message.PayloadEnd))
            if (f.Number == nameField && f.Wire == LengthDelimited) return Encoding.UTF8.GetString(b, f.PayloadStart, f.PayloadEnd - f.PayloadStart);
        return null;
    }

    static List<Field> Fields(byte[] b, int start, int end)
    {
        var fields = new List<Field>();
        int p = start;
        while (p < end)
        {
            int fieldStart = p;
            ulong tag = ReadVarint(b, ref p);
            int number = (int)(tag >> 3), wire = (int)(tag & 7);
            int payloadStart = p;
            switch (wire)
            {
                case 0: ReadVarint(b, ref p); break;
                case 1: p += 8; break;
                case 5: p += 4; break;
                case LengthDelimited:
                    long length = (long)ReadVarint(b, ref p);
                    if (length < 0 || length > end - p) throw new InvalidDataException("ONNX model: a field runs past its message");
                    payloadStart = p;
                    p += (int)length;
                    break;
                default: throw new InvalidDataException($"ONNX model: unsupported protobuf wire type {wire}");
            }
            if (p > end) throw new InvalidDataException("ONNX model: a field runs past its message");
            fields.Add(new Field(number, wire, fieldStart, p, payloadStart, p));
        }
        return fields;
    }

    static ulong ReadVarint(byte[] b, ref int p)
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (p >= b.Length) throw new InvalidDataException("ONNX model: truncated varint");
            byte x = b[p++];
            value |= (ulong)(x & 0x7F) << shift;
            if ((x & 0x80) == 0) return value;
        }
        throw new InvalidDataException("ONNX model: varint longer than 10 bytes");
    }

    static void WriteVarint(Stream s, ulong value)
    {
        while (value >= 0x80)
        {
            s.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        s.WriteByte((byte)value);
    }

    static void WriteLengthDelimited(Stream s, int number, byte[] payload)
    {
        WriteVarint(s, ((ulong)number << 3) | LengthDelimited);
        WriteVarint(s, (ulong)payload.Length);
        s.Write(payload);
    }
}
