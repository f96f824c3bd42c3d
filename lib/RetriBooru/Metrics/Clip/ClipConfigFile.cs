using System.Text.Json.Nodes;
using RetriBooru.Runtime;

namespace RetriBooru.Metrics.Clip;

/// <summary>Reads the tower sizes from an HF CLIP config.json (CLIPModel: vision_config + text_config; or a single tower's config).</summary>
public static class ClipConfigFile
{
    public static (ClipVisionConfig? Vision, ClipTextConfig? Text) Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: CLIP config not found", path);
        JsonNode root;
        try { root = JsonNode.Parse(RegularFile.ReadAllText(path, "CLIP config")) ?? throw new InvalidDataException($"{path}: empty config"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e); }
        var modelType = String(root, "model_type", path, null);
        var visionNode = root["vision_config"] ?? (modelType == "clip_vision_model" ? root : null);
        var textNode = root["text_config"] ?? (modelType == "clip_text_model" ? root : null);
        if (visionNode is null && textNode is null) throw new InvalidDataException($"{path}: neither vision_config nor text_config found (model_type '{modelType}')");
        int projection = Int(root, "projection_dim", path, 512, SizeLimits.MaxWidth);
        return (visionNode is null ? null : Vision(visionNode, projection, path), textNode is null ? null : Text(textNode, projection, path));
    }

    static ClipVisionConfig Vision(JsonNode n, int projection, string path)
    {
        // HF omits fields equal to the CLIPVisionConfig defaults (ViT-B/32), so those are the fallbacks.
        var config = new ClipVisionConfig(
            Int(n, "hidden_size", path, 768, SizeLimits.MaxWidth), Int(n, "intermediate_size", path, 3072, 4 * SizeLimits.MaxWidth),
            Int(n, "num_hidden_layers", path, 12, SizeLimits.MaxLayers), Int(n, "num_attention_heads", path, 12, SizeLimits.MaxAttentionHeads),
            Int(n, "image_size", path, 224, SizeLimits.MaxSampleSize), Int(n, "patch_size", path, 32, SizeLimits.MaxSampleSize),
            Int(n, "projection_dim", path, projection, SizeLimits.MaxWidth), Double(n, "layer_norm_eps", path, 1e-5), String(n, "hidden_act", path, "quick_gelu")!);
        Validated(config.Validate, path);
        double h = config.HiddenSize, patches = Math.Pow((double)config.ImageSize / config.PatchSize, 2);
        SizeLimits.RequireParameters(config.NumLayers * (4 * h * h + 2 * h * config.IntermediateSize) + (patches + 1) * h + 3.0 * config.PatchSize * config.PatchSize * h, path, "CLIP vision tower");
        return config;
    }

    static ClipTextConfig Text(JsonNode n, int projection, string path)
    {
        int vocab = Int(n, "vocab_size", path, 49408, SizeLimits.MaxVocabSize);
        int eos = Int(n, "eos_token_id", path, 49407, SizeLimits.MaxVocabSize);
        // Older OpenAI configs say eos_token_id = 2 while the real end token is the vocabulary's last id (HF then pools
        // at the argmax id, which is that token); use the real id.
        if (eos == 2 && vocab == 49408) eos = 49407;
        var config = new ClipTextConfig(
            vocab, Int(n, "hidden_size", path, 512, SizeLimits.MaxWidth), Int(n, "intermediate_size", path, 2048, 4 * SizeLimits.MaxWidth),
            Int(n, "num_hidden_layers", path, 12, SizeLimits.MaxLayers), Int(n, "num_attention_heads", path, 8, SizeLimits.MaxAttentionHeads),
            Int(n, "max_position_embeddings", path, 77, SizeLimits.MaxPositions), Int(n, "projection_dim", path, projection, SizeLimits.MaxWidth),
            eos, Double(n, "layer_norm_eps", path, 1e-5), String(n, "hidden_act", path, "quick_gelu")!);
        Validated(config.Validate, path);
        double h = config.HiddenSize;
        SizeLimits.RequireParameters((double)config.VocabSize * h + config.MaxPositions * h + config.NumLayers * (4 * h * h + 2 * h * config.IntermediateSize), path, "CLIP text tower");
        return config;
    }

    static void Validated(Action validate, string path)
    {
        try { validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"{path}: {e.Message}", e); }
    }

    /// <summary>An integer field in [1, max] (the fallback when absent).</summary>
    static int Int(JsonNode node, string key, string path, int fallback, int max)
    {
        var value = node[key];
        if (value is null) return fallback;
        int parsed;
        try { parsed = value.GetValue<int>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException) { throw new InvalidDataException($"{path}: '{key}' is not an integer ({value.ToJsonString()})", e); }
        return SizeLimits.Require(parsed, 1, max, path, key);
    }

    static double Double(JsonNode node, string key, string path, double fallback)
    {
        if (node[key] is not JsonNode value) return fallback;
        try { return value.GetValue<double>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException) { throw new InvalidDataException($"{path}: '{key}' is not a number ({value.ToJsonString()})", e); }
    }

    static string? String(JsonNode node, string key, string path, string? fallback)
    {
        if (node[key] is not JsonNode value) return fallback;
        try { return value.GetValue<string>(); }
        catch (InvalidOperationException e) { throw new InvalidDataException($"{path}: '{key}' is not a string ({value.ToJsonString()})", e); }
    }
}
