using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Metrics.Clip;

/// <summary>
/// Copies a checkpoint's tensors into a CLIP tower by name. Only keys under the tower's own prefixes are read
/// (a full CLIPModel checkpoint holds both towers); position_ids buffers and logit_scale are ignored. Missing keys,
/// unexpected keys under the tower's prefixes and shape mismatches are errors that name the key.
/// </summary>
public static class ClipStateDict
{
    static readonly string[] Ignored = ["embeddings.position_ids"];

    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> source, IReadOnlyList<string> prefixes, string sourceName)
    {
        var parameters = module.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var missing = parameters.Keys.Where(k => !source.ContainsKey(k)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{sourceName}: missing {missing.Count} CLIP key(s), e.g. {string.Join(", ", missing.Take(5))}");
        var unexpected = source.Keys.Where(k => prefixes.Any(p => k.StartsWith(p, StringComparison.Ordinal)) && !parameters.ContainsKey(k) && !Ignored.Any(k.EndsWith)).ToList();
        if (unexpected.Count > 0)
            throw new InvalidDataException($"{sourceName}: unexpected CLIP key(s) for this config, e.g. {string.Join(", ", unexpected.Take(5))} (is the config's layer count or naming right?)");
        using var noGrad = no_grad();
        foreach (var (name, parameter) in parameters)
        {
            using var scope = NewDisposeScope();
            var value = source[name];
            if (!value.shape.SequenceEqual(parameter.shape))
                throw new InvalidDataException($"{sourceName}: '{name}' has shape [{string.Join(", ", value.shape)}], the config expects [{string.Join(", ", parameter.shape)}]");
            parameter.copy_(value.to(parameter.dtype).to(parameter.device));
        }
    }
}
