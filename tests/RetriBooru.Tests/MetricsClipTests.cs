using RetriBooru.Metrics;
using RetriBooru.Modeling;
using RetriBooru.Modeling.Clip;
using RetriBooru.Modeling.Tokenizers;
using RetriBooru.Weights;
using SkiaSharp;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

/// <summary>CLIP towers with tiny random weights written under HF key names by the test.</summary>
public class MetricsClipTests
{
    static readonly ClipVisionConfig Vision = new() { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, ImageSize = 32, PatchSize = 8, ProjectionDim = 16 };
    static readonly TextEncoderConfig Text = new() { VocabSize = 20, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 2, NumAttentionHeads = 4, MaxPositionEmbeddings = 8, ProjectionDim = 16, EosTokenId = 1 };

    /// <summary>The keys and shapes of an HF CLIPModel checkpoint, spelled out independently of the model code.</summary>
    static Dictionary<string, Tensor> RandomClipStateDict(long seed)
    {
        Torch.Load();
        var g = new Generator(0).manual_seed(seed);
        var dict = new Dictionary<string, Tensor>();
        void Add(string key, params long[] shape) => dict[key] = randn(shape, generator: g) * (key.EndsWith("weight") && shape.Length == 1 ? 0.1 : 0.3) + (key.Contains("layer_norm") || key.Contains("layrnorm") ? (key.EndsWith("weight") ? 1.0 : 0.0) : 0.0);
        void Layers(string prefix, int count, int d, int ff)
        {
            for (int i = 0; i < count; i++)
            {
                var p = $"{prefix}.encoder.layers.{i}.";
                foreach (var proj in new[] { "q_proj", "k_proj", "v_proj", "out_proj" }) { Add(p + $"self_attn.{proj}.weight", d, d); Add(p + $"self_attn.{proj}.bias", d); }
                Add(p + "layer_norm1.weight", d); Add(p + "layer_norm1.bias", d);
                Add(p + "layer_norm2.weight", d); Add(p + "layer_norm2.bias", d);
                Add(p + "mlp.fc1.weight", ff, d); Add(p + "mlp.fc1.bias", ff);
                Add(p + "mlp.fc2.weight", d, ff); Add(p + "mlp.fc2.bias", d);
            }
        }
        Add("vision_model.embeddings.class_embedding", 32);
        Add("vision_model.embeddings.patch_embedding.weight", 32, 3, 8, 8);
        Add("vision_model.embeddings.position_embedding.weight", 17, 32);
        dict["vision_model.embeddings.position_ids"] = arange(17).unsqueeze(0);
        Add("vision_model.pre_layrnorm.weight", 32); Add("vision_model.pre_layrnorm.bias", 32);
        Layers("vision_model", 2, 32, 64);
        Add("vision_model.post_layernorm.weight", 32); Add("vision_model.post_layernorm.bias", 32);
        Add("visual_projection.weight", 16, 32);
        Add("text_model.embeddings.token_embedding.weight", 20, 32);
        Add("text_model.embeddings.position_embedding.weight", 8, 32);
        Layers("text_model", 2, 32, 64);
        Add("text_model.final_layer_norm.weight", 32); Add("text_model.final_layer_norm.bias", 32);
        Add("text_projection.weight", 16, 32);
        dict["logit_scale"] = tensor(2.6592f);
        return dict;
    }

    /// <summary>A second, straightforward implementation of the HF CLIP vision forward pass, from the dict alone.</summary>
    static Tensor ReferenceVisionForward(Dictionary<string, Tensor> w, Tensor pixels)
    {
        Tensor Ln(Tensor x, string p) => nn.functional.layer_norm(x, [x.shape[^1]], w[p + ".weight"], w[p + ".bias"], 1e-5);
        Tensor Lin(Tensor x, string p) => x.matmul(w[p + ".weight"].t()) + w[p + ".bias"];
        var patches = nn.functional.conv2d(pixels, w["vision_model.embeddings.patch_embedding.weight"], strides: [8, 8]).flatten(2).transpose(1, 2);
        var x = cat([w["vision_model.embeddings.class_embedding"].view(1, 1, 32).expand(pixels.shape[0], 1, 32), patches], 1) + w["vision_model.embeddings.position_embedding.weight"];
        x = Ln(x, "vision_model.pre_layrnorm");
        for (int i = 0; i < 2; i++)
        {
            var p = $"vision_model.encoder.layers.{i}.";
            var h = Ln(x, p + "layer_norm1");
            long b = h.shape[0], t = h.shape[1];
            Tensor Heads(Tensor y) => y.view(b, t, 4, 8).permute(0, 2, 1, 3);
            var q = Heads(Lin(h, p + "self_attn.q_proj")) / Math.Sqrt(8);
            var k = Heads(Lin(h, p + "self_attn.k_proj"));
            var v = Heads(Lin(h, p + "self_attn.v_proj"));
            var attn = q.matmul(k.transpose(-1, -2)).softmax(-1).matmul(v).permute(0, 2, 1, 3).reshape(b, t, 32);
            x = x + Lin(attn, p + "self_attn.out_proj");
            var f = Lin(Ln(x, p + "layer_norm2"), p + "mlp.fc1");
            x = x + Lin(f * sigmoid(1.702 * f), p + "mlp.fc2");
        }
        var pooled = Ln(x[.., 0], "vision_model.post_layernorm");
        return pooled.matmul(w["visual_projection.weight"].t());
    }

    [Fact]
    public void Vision_tower_loaded_from_HF_keys_matches_an_independent_forward_pass()
    {
        var dict = RandomClipStateDict(1);
        using var tower = ClipStateDict.LoadVisionTower(Vision, dict);
        using var scope = NewDisposeScope();
        var pixels = randn([2, 3, 32, 32], generator: new Generator(0).manual_seed(2));
        using var noGrad = no_grad();
        var ours = tower.Forward(pixels);
        var reference = ReferenceVisionForward(dict, pixels);
        Assert.Equal([2L, 16L], ours.shape);
        Assert.True(ours.allclose(reference, rtol: 1e-4, atol: 1e-4), $"max diff {(ours - reference).abs().max().item<float>()}");
    }

    [Fact]
    public void Clip_image_embedder_puts_an_image_closer_to_its_resize_than_to_an_unrelated_image()
    {
        using var embedder = new ClipImageEmbedder(ClipStateDict.LoadVisionTower(Vision, RandomClipStateDict(3)));
        var rng = new Random(5);
        using var image = MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(new("red", "purple", true), rng) with { Background = "stripes" }, 96);
        using var other = MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(new("green", "white", false), rng) with { Background = "plain" }, 96);
        using var resized = ImageOps.Resize(image.Image, 61, 61);
        var e = embedder.Embed(image.Image);
        Assert.Equal(16, e.Length);
        double toResize = VectorMath.Dot(e, embedder.Embed(resized));
        double toOther = VectorMath.Dot(e, embedder.Embed(other.Image));
        Assert.True(toResize > 0.99 && toResize > toOther + 0.02, $"resize {toResize} vs unrelated {toOther}");
    }

    [Fact]
    public void Loading_reports_missing_and_misshapen_keys_by_name()
    {
        var dict = RandomClipStateDict(1);
        dict.Remove("vision_model.encoder.layers.1.mlp.fc2.bias");
        var missing = Assert.Throws<InvalidDataException>(() => ClipStateDict.LoadVisionTower(Vision, dict, "clip.safetensors"));
        Assert.Contains("clip.safetensors", missing.Message);
        Assert.Contains("vision_model.encoder.layers.1.mlp.fc2.bias", missing.Message);

        var wrong = RandomClipStateDict(1);
        wrong["text_projection.weight"] = zeros(8, 32);
        var shape = Assert.Throws<InvalidDataException>(() => ClipStateDict.LoadTextTower(Text, wrong));
        Assert.Contains("text_projection.weight", shape.Message);
        Assert.Contains("[8, 32]", shape.Message);

        var deeper = RandomClipStateDict(1);
        var error = Assert.Throws<InvalidDataException>(() => ClipStateDict.LoadVisionTower(Vision with { NumHiddenLayers = 1 }, deeper));
        Assert.Contains("vision_model.encoder.layers.1.", error.Message);
    }

    [Fact]
    public void Clip_config_json_gives_the_tower_sizes()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """
            {"model_type": "clip", "projection_dim": 768,
             "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12, "eos_token_id": 2, "vocab_size": 49408},
             "vision_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14}}
            """);
        var (vision, text) = DiffusersConfigJson.ReadClip(dir.File("config.json"));
        Assert.Equal(ClipVisionConfig.VitL14, vision);
        Assert.Equal(TextEncoderConfig.VitL14, text);
        File.WriteAllText(dir.File("bad.json"), """{"model_type": "clip", "vision_config": {"hidden_size": "big"}}""");
        var error = Assert.Throws<InvalidDataException>(() => DiffusersConfigJson.ReadClip(dir.File("bad.json")));
        Assert.Contains("bad.json", error.Message);
        Assert.Contains("hidden_size", error.Message);
    }

    [Fact]
    public void Text_tower_pools_at_the_first_eos_and_ignores_tokens_after_it()
    {
        using var tower = ClipStateDict.LoadTextTower(Text, RandomClipStateDict(4));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // 0 = start, 1 = eos; tokens after the eos must not matter (causal attention, pooled at eos).
        var a = tower.Forward(tensor(new long[] { 0, 5, 6, 7, 1, 1, 1, 1 }, [1, 8]));
        var b = tower.Forward(tensor(new long[] { 0, 5, 6, 7, 1, 9, 12, 3 }, [1, 8]));
        var c = tower.Forward(tensor(new long[] { 0, 5, 6, 8, 1, 1, 1, 1 }, [1, 8]));
        Assert.True(a.allclose(b, rtol: 1e-5, atol: 1e-5));
        Assert.False(a.allclose(c, rtol: 1e-3, atol: 1e-3));
        Assert.Throws<ArgumentException>(() => tower.Forward(tensor(new long[] { 0, 5, 6, 7, 2, 2, 2, 2 }, [1, 8])));
    }

    [Fact]
    public void Clip_tokenizer_applies_bpe_merges_and_pads_to_the_context()
    {
        using var dir = new TempDir();
        var vocab = new Dictionary<string, int>
        {
            ["<|startoftext|>"] = 0, ["<|endoftext|>"] = 1, ["r"] = 2, ["e"] = 3, ["d</w>"] = 4, ["h"] = 5, ["a"] = 6, ["i"] = 7, ["r</w>"] = 8,
            ["re"] = 9, ["red</w>"] = 10, ["ha"] = 11, ["hai"] = 12, ["hair</w>"] = 13, [","] = 14, [",</w>"] = 15, ["d"] = 16, ["ai"] = 17,
        };
        File.WriteAllText(dir.File("vocab.json"), System.Text.Json.JsonSerializer.Serialize(vocab));
        File.WriteAllLines(dir.File("merges.txt"), ["#version: 0.2", "r e", "re d</w>", "h a", "ha i", "hai r</w>"]);
        var tokenizer = ClipBpeTokenizer.Load(dir.Path, maxLength: 8);
        Assert.Equal([0, 10, 13, 15, 13, 1, 1, 1], tokenizer.Encode("Red  HAIR, hair"));
        // Truncation keeps the end token.
        Assert.Equal([0, 10, 10, 10, 10, 10, 10, 1], tokenizer.Encode(string.Join(' ', Enumerable.Repeat("red", 20))));
        Assert.Contains("'x</w>'", Assert.Throws<InvalidDataException>(() => tokenizer.Encode("x")).Message);

        // With the towers: CLIP-T similarity of a text to itself is 1 and the pipeline runs end to end.
        using var text = new ClipTextEmbedder(ClipStateDict.LoadTextTower(Text with { VocabSize = 20 }, RandomClipStateDict(6)), tokenizer);
        var v = text.Embed(["red hair", "red hair", "hair"]);
        Assert.Equal(1.0, VectorMath.Dot(v[0], v[1]), 5);
        Assert.True(VectorMath.Dot(v[0], v[2]) < 0.999);

        // CLIP-T: image and text towers of one checkpoint share the 16-d projection space.
        var dict = RandomClipStateDict(6);
        using var image = new ClipImageEmbedder(ClipStateDict.LoadVisionTower(Vision, dict));
        using var drawn = MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(new("red", "white", true), new Random(1)), 64);
        double clipT = PromptConsistency.ClipT(image, text, drawn.Image, "red hair");
        Assert.Equal(VectorMath.Dot(image.Embed(drawn.Image), text.Embed("red hair")), clipT, 6);
        Assert.InRange(clipT, -1, 1);
        using var minilm = new MiniLmTextEmbedder();
        Assert.Contains("one space", Assert.Throws<ArgumentException>(() => PromptConsistency.ClipT(image, minilm, drawn.Image, "red hair")).Message);
    }
}
