using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Weights;

/// <summary>Weights did not fit a model; the message lists missing, unexpected and mis-shaped keys.</summary>
public sealed class WeightLoadException(string message, LoadReport report) : Exception(message)
{
    public LoadReport Report { get; } = report;
}

/// <summary>What happened when a state dict was copied into a module.</summary>
public sealed record LoadReport(string Source, IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected, IReadOnlyList<string> Mismatched, int Loaded)
{
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && Mismatched.Count == 0;

    public string Describe(int maxListed = 10)
    {
        static string List(string label, IReadOnlyList<string> keys, int max) =>
            keys.Count == 0 ? "" : $"{Environment.NewLine}  {keys.Count} {label}: {string.Join(", ", keys.Take(max))}{(keys.Count > max ? ", ..." : "")}";
        return $"{Source}: loaded {Loaded} tensors" + List("missing", Missing, maxListed) + List("unexpected", Unexpected, maxListed) + List("mis-shaped", Mismatched, maxListed);
    }
}

/// <summary>Copies named tensors into a module's parameters and buffers (dtype and device converted), strictly by default.</summary>
public static class StateDictLoader
{
    /// <summary>
    /// Keys that published checkpoints carry but that are not weights (transformers' CLIP position-id
    /// buffer); they are neither required nor reported as unexpected.
    /// </summary>
    public static readonly IReadOnlySet<string> IgnoredKeys = new HashSet<string> { "text_model.embeddings.position_ids" };

    /// <param name="strict">Throw <see cref="WeightLoadException"/> unless every key matches by name and shape.</param>
    public static LoadReport Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source, string sourceName, bool strict = true)
    {
        var target = module.state_dict();
        var missing = new List<string>();
        var mismatched = new List<string>();
        var unexpected = source.Keys.Where(k => !target.ContainsKey(k) && !IgnoredKeys.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        foreach (var (key, destination) in target)
        {
            if (!source.TryGetValue(key, out var value)) { missing.Add(key); continue; }
            if (!value.shape.SequenceEqual(destination.shape))
                mismatched.Add($"{key} (file [{string.Join(", ", value.shape)}], model [{string.Join(", ", destination.shape)}])");
        }
        var report = new LoadReport(sourceName, missing, unexpected, mismatched, target.Count - missing.Count - mismatched.Count);
        if (strict && !report.IsExact) throw new WeightLoadException("weights do not match the model: " + report.Describe(), report);

        using (no_grad())
        {
            foreach (var (key, destination) in target)
            {
                if (!source.TryGetValue(key, out var value) || !value.shape.SequenceEqual(destination.shape)) continue;
                using var converted = value.to(destination.dtype, destination.device);
                destination.copy_(converted);
            }
        }
        return report;
    }

    /// <summary>A module's tensors as CPU copies (safe to keep after the module changes), keyed by diffusers names.</summary>
    public static Dictionary<string, Tensor> Snapshot(nn.Module module)
    {
        // The scope keeps each chain's intermediates alive until their native calls return; the copies leave it.
        using var scope = NewDisposeScope();
        return module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().to(CPU).clone().DetachFromDisposeScope(), StringComparer.Ordinal);
    }
}
