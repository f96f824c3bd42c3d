using RetriBooru.Modeling;
using RetriBooru.Modeling.Clip;
using static TorchSharp.torch;

namespace RetriBooru.Weights;

/// <summary>
/// Builds a CLIP tower and loads it from a checkpoint's tensors by name (HF keys, e.g. read from model.safetensors).
/// Only keys under the tower's own prefixes are read (a full CLIPModel checkpoint holds both towers; logit_scale
/// and the position_ids buffers are ignored); missing keys, unexpected keys under those prefixes and shape
/// mismatches are <see cref="InvalidDataException"/>s that name the source and the key.
/// </summary>
public static class ClipStateDict
{
    public static ClipVisionTower LoadVisionTower(ClipVisionConfig config, IReadOnlyDictionary<string, Tensor> stateDict, string sourceName = "CLIP state dict") =>
        Load(new ClipVisionTower(config), stateDict, ["vision_model.", "visual_projection."], sourceName);

    public static ClipTextTower LoadTextTower(TextEncoderConfig config, IReadOnlyDictionary<string, Tensor> stateDict, string sourceName = "CLIP state dict") =>
        Load(new ClipTextTower(config), stateDict, ["text_model.", "text_projection."], sourceName);

    static T Load<T>(T tower, IReadOnlyDictionary<string, Tensor> source, string[] prefixes, string sourceName) where T : nn.Module
    {
        try
        {
            var own = source.Where(kv => prefixes.Any(p => kv.Key.StartsWith(p, StringComparison.Ordinal)) && !kv.Key.EndsWith("embeddings.position_ids", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            try { StateDictLoader.Load(tower, own, sourceName); }
            catch (WeightLoadException e) { throw new InvalidDataException($"CLIP {e.Message}", e); }
            tower.eval();
            return tower;
        }
        catch
        {
            tower.Dispose();
            throw;
        }
    }
}
