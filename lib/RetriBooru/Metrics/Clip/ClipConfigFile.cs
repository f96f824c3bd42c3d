using System.Text.Json.Nodes;

namespace RetriBooru.Metrics.Clip;

/// <summary>Reads the tower sizes from an HF CLIP config.json (CLIPModel: vision_config + text_config; or a single tower's config).</summary>
public static class ClipConfigFile
{
    public static (ClipVisionConfig? Vision, ClipTextConfig? Text) Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: CLIP config not found", path);
        JsonNode root;
        try { root = JsonNode.Parse(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path}: empty config"); }
        catch (System.Text.Json.JsonException e) { throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e); }
        var modelType = root["model_type"]?.GetValue<string>();
        var visionNode = root["vision_config"] ?? (modelType == "clip_vision_model" ? root : null);
        var textNode = root["text_config"] ?? (modelType == "clip_text_model" ? root : null);
        if (visionNode is null && textNode is null) throw new InvalidDataException($"{path}: neither vision_config nor text_config found (model_type '{modelType}')");
        int projection = Int(root, "projection_dim", path, 512);
        return (visionNode is null ? null : Vision(visionNode, projection, path), textNode is null ? null : Text(textNode, projection, path));
    }

    static ClipVisionConfig Vision(JsonNode n, int projection, string path)
    {
        // HF omits fields equal to the CLIPVisionConfig defaults (ViT-B/32), so those are the fallbacks.
        var config = new ClipVisionConfig(
            Int(n, "hidden_size", path, 768), Int(n, "intermediate_size", path, 3072), Int(n, "num_hidden_layers", path, 12),
            Int(n, "num_attention_heads", path, 12), Int(n, "image_size", path, 224), Int(n, "patch_size", path, 32),
            Int(n, "projection_dim", path, projection), Double(n, "layer_norm_eps", 1e-5), n["hidden_act"]?.GetValue<string>() ?? "quick_gelu");
        config.Validate();
        return config;
    }

    static ClipTextConfig Text(JsonNode n, int projection, string path)
    {
        int vocab = Int(n, "vocab_size", path, 49408);
        int eos = Int(n, "eos_token_id", path, 49407);
        // Older OpenAI configs say eos_token_id = 2 while the real end token is the vocabulary's last id (HF then pools
        // at the argmax id, which is that token); use the real id.
        if (eos == 2 && vocab == 49408) eos = 49407;
        var config = new ClipTextConfig(
            vocab, Int(n, "hidden_size", path, 512), Int(n, "intermediate_size", path, 2048), Int(n, "num_hidden_layers", path, 12),
            Int(n, "num_attention_heads", path, 8), Int(n, "max_position_embeddings", path, 77), Int(n, "projection_dim", path, projection),
            eos, Double(n, "layer_norm_eps", 1e-5), n["hidden_act"]?.GetValue<string>() ?? "quick_gelu");
        config.Validate();
        return config;
    }

    static int Int(JsonNode node, string key, string path, int fallback)
    {
        var value = node[key];
        if (value is null) return fallback;
        try { return value.GetValue<int>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException) { throw new InvalidDataException($"{path}: '{key}' is not an integer ({value.ToJsonString()})", e); }
    }

    static double Double(JsonNode node, string key, double fallback) => node[key] is JsonNode v ? v.GetValue<double>() : fallback;
}
