using System.Buffers.Binary;
using System.Text;
using RetriBooru.Modeling;
using RetriBooru.Modeling.Tokenizers;
using RetriBooru.Weights;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

public class WeightsTests
{
    /// <summary>A small model exercising every structural case: attention and plain levels, 2 layers per block (as SD), a VAE with 2 levels.</summary>
    internal static DiffusionModel SmallModel(long seed)
    {
        Torch.Load();
        var tokenizer = new TagTokenizer(["1girl", "red_hair", "smile", "school_uniform"], maxLength: 8);
        var config = new ModelConfig
        {
            Name = "test-small",
            Unet = new UNetConfig
            {
                SampleSize = 8, InChannels = 4, OutChannels = 4, BlockOutChannels = [8, 16],
                DownBlockTypes = ["CrossAttnDownBlock2D", "DownBlock2D"], UpBlockTypes = ["UpBlock2D", "CrossAttnUpBlock2D"],
                LayersPerBlock = 2, AttentionHeads = 2, CrossAttentionDim = 16, NormNumGroups = 4,
            },
            Vae = new VaeConfig { BlockOutChannels = [8, 16], LayersPerBlock = 1, NormNumGroups = 4, SampleSize = 16 },
            TextEncoder = new TextEncoderConfig { VocabSize = tokenizer.VocabSize, HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 2, MaxPositionEmbeddings = 8 },
            Tokenizer = TokenizerKind.Tags,
            ImageSize = 16,
        };
        var model = new DiffusionModel(config, tokenizer);
        // Randomise every tensor (norm weights included) so a tensor that failed to load could not pass by chance.
        using var generator = new Generator(0).manual_seed(seed);
        using (no_grad())
            foreach (var (_, module) in model.Components())
                foreach (var p in module.parameters())
                    p.copy_(randn(p.shape, generator: generator) * 0.2);
        return model;
    }

    internal static Tensor[] Outputs(DiffusionModel model)
    {
        using var generator = new Generator(0).manual_seed(7);
        var image = rand(2, 3, 16, 16, generator: generator) * 2 - 1;
        using (no_grad())
        {
            var text = model.EncodePrompts(["1girl, red_hair", "smile, unknown_tag"]);
            var latent = model.ToModelSpace(image);
            var eps = model.Unet.Forward(latent, tensor(new long[] { 10, 900 }), text);
            var decoded = model.ToImages(latent);
            return [text, latent, eps, decoded];
        }
    }

    [Fact]
    public void Safetensors_round_trips_f32_f16_bf16_and_metadata()
    {
        Torch.Load();
        using var dir = new TempDir();
        var path = dir.File("t.safetensors");
        var a = randn(3, 5);
        var b = randn(2, 2).to(float16);
        var c = randn(4).to(bfloat16);
        var d = tensor(new long[] { 1, 2, 3 });
        var e = empty(0, 3);
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["a"] = a, ["b"] = b, ["c"] = c, ["d"] = d, ["e"] = e }, new Dictionary<string, string> { ["note"] = "x" });

        var bytes = File.ReadAllBytes(path);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + headerLength) % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.Contains("\"b\":{\"dtype\":\"F16\",\"shape\":[2,2]", header);
        Assert.Contains("\"__metadata__\":{\"note\":\"x\"}", header);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("x", file.Metadata["note"]);
        Assert.True(file.Read("a").Equals(a));
        Assert.Equal(ScalarType.Float16, file.Read("b").dtype);
        Assert.True(file.Read("b").Equals(b));
        Assert.True(file.Read("c").Equals(c));
        Assert.True(file.Read("d").Equals(d));
        Assert.Equal(new long[] { 0, 3 }, file.Read("e").shape);
    }

    static string WriteRaw(TempDir dir, string name, string header, int dataBytes, ulong? declaredLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        var path = dir.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, "outside")]
    [InlineData("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 16, "overlap")]
    [InlineData("""{"w":{"dtype":"F32","shape":[1000000000000,1000000000000],"data_offsets":[0,16]}}""", 16, "needs")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]""", 16, "not valid JSON")]
    [InlineData("""{"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}}""", 16, "unsupported dtype")]
    [InlineData("""{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}""", 16, "invalid shape")]
    [InlineData("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}}""", 16, "invalid data_offsets")]
    [InlineData("""[1,2,3]""", 0, "not a JSON object")]
    public void Malicious_headers_are_clear_errors(string header, int dataBytes, string problem)
    {
        using var dir = new TempDir();
        var path = WriteRaw(dir, "bad.safetensors", header, dataBytes);
        var error = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void Absurd_header_length_and_tiny_files_are_rejected_before_allocating()
    {
        using var dir = new TempDir();
        var huge = WriteRaw(dir, "huge.safetensors", "{}", 0, declaredLength: 1UL << 60);
        Assert.Contains("exceeds", Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(huge)).Message);
        var pastEnd = WriteRaw(dir, "past.safetensors", "{}", 0, declaredLength: 1000);
        Assert.Contains("past the end", Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(pastEnd)).Message);
        var tiny = dir.File("tiny.safetensors");
        File.WriteAllBytes(tiny, [1, 2, 3]);
        Assert.Contains("shorter", Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(tiny)).Message);
    }

    [Fact]
    public void Diffusers_folder_round_trip_reproduces_outputs()
    {
        using var dir = new TempDir();
        using var model = SmallModel(1);
        var before = Outputs(model);
        ModelStore.SaveDiffusers(model, dir.Path);
        foreach (var f in new[] { "model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                     "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/tags.json", "scheduler/scheduler_config.json" })
            Assert.True(File.Exists(Path.Combine(dir.Path, f)), f);
        using (var file = SafeTensorsFile.Open(Path.Combine(dir.Path, "unet", ModelStore.UnetWeights)))
            Assert.Contains("down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k.weight", file.Entries.Keys);

        using var reloaded = ModelStore.LoadDiffusers(dir.Path);
        Assert.Equal(model.Config.Unet.BlockOutChannels, reloaded.Config.Unet.BlockOutChannels);
        var after = Outputs(reloaded);
        for (int i = 0; i < before.Length; i++) Assert.True(before[i].Equals(after[i]), $"output {i} differs");
    }

    [Fact]
    public void Single_file_ldm_round_trip_reproduces_outputs_and_uses_ldm_names()
    {
        using var dir = new TempDir();
        using var model = SmallModel(2);
        var before = Outputs(model);
        var path = dir.File("model.safetensors");
        ModelStore.SaveSingleFile(model, path);
        using (var file = SafeTensorsFile.Open(path))
        {
            var keys = file.Entries.Keys.ToHashSet();
            foreach (var expected in new[]
            {
                "model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.time_embed.0.weight",
                "model.diffusion_model.input_blocks.1.0.in_layers.0.weight", "model.diffusion_model.input_blocks.2.1.proj_in.weight",
                "model.diffusion_model.input_blocks.3.0.op.weight", "model.diffusion_model.input_blocks.4.0.skip_connection.weight",
                "model.diffusion_model.middle_block.1.transformer_blocks.0.attn1.to_q.weight", "model.diffusion_model.middle_block.2.emb_layers.1.bias",
                "model.diffusion_model.output_blocks.2.1.conv.weight", "model.diffusion_model.output_blocks.5.1.proj_out.bias", "model.diffusion_model.out.2.weight",
                "first_stage_model.encoder.down.0.block.0.conv1.weight", "first_stage_model.encoder.down.0.downsample.conv.weight",
                "first_stage_model.decoder.up.1.upsample.conv.weight", "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight",
                "first_stage_model.encoder.mid.attn_1.q.weight", "first_stage_model.encoder.norm_out.weight", "first_stage_model.quant_conv.weight",
                "cond_stage_model.transformer.text_model.final_layer_norm.weight",
            })
                Assert.Contains(expected, keys);
            Assert.Equal(new long[] { 16, 16, 1, 1 }, file.Entries["first_stage_model.decoder.mid.attn_1.proj_out.weight"].Shape);
        }
        using var reloaded = ModelStore.LoadSingleFile(path);
        var after = Outputs(reloaded);
        for (int i = 0; i < before.Length; i++) Assert.True(before[i].Equals(after[i]), $"output {i} differs");
    }

    [Fact]
    public void Strict_loading_reports_missing_unexpected_and_misshaped_keys()
    {
        using var model = SmallModel(3);
        var state = StateDictLoader.Snapshot(model.TextEncoder);
        state.Remove("text_model.final_layer_norm.bias");
        state["text_model.extra.weight"] = zeros(2);
        state["text_model.encoder.layers.0.mlp.fc1.weight"] = zeros(3, 3);
        state["text_model.embeddings.position_ids"] = arange(8);
        var error = Assert.Throws<WeightLoadException>(() => StateDictLoader.Load(model.TextEncoder, state, "test.safetensors"));
        Assert.Equal(["text_model.final_layer_norm.bias"], error.Report.Missing);
        Assert.Equal(["text_model.extra.weight"], error.Report.Unexpected);
        Assert.Single(error.Report.Mismatched);
        Assert.Contains("fc1.weight (file [3, 3], model [32, 16])", error.Message);
        Assert.Contains("test.safetensors", error.Message);

        var lenient = StateDictLoader.Load(model.TextEncoder, state, "test", strict: false);
        Assert.False(lenient.IsExact);
    }

    [Fact]
    public void Published_variants_load_deprecated_vae_attention_names_and_fp16_file_names()
    {
        using var dir = new TempDir();
        using var model = SmallModel(4);
        ModelStore.SaveDiffusers(model, dir.Path);
        // Rewrite the VAE as published SD1.x folders have it: old attention names, 1x1-conv shapes, fp16 file name.
        var vaePath = Path.Combine(dir.Path, "vae", ModelStore.UnetWeights);
        var renamed = SafeTensors.Load(vaePath).ToDictionary(
            kv => kv.Key.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn."),
            kv => kv.Key.Contains(".to_q.weight") ? kv.Value.unsqueeze(-1).unsqueeze(-1) : kv.Value);
        Assert.Contains("encoder.mid_block.attentions.0.query.weight", renamed.Keys);
        File.Delete(vaePath);
        SafeTensors.Save(Path.Combine(dir.Path, "vae", "diffusion_pytorch_model.fp16.safetensors"), renamed.ToDictionary(kv => kv.Key, kv => kv.Value));
        using var reloaded = ModelStore.LoadDiffusers(dir.Path);
        var before = Outputs(model);
        var after = Outputs(reloaded);
        for (int i = 0; i < before.Length; i++) Assert.True(before[i].Equals(after[i]), $"output {i} differs");
    }

    [Fact]
    public void Ldm_key_map_gives_the_sd15_checkpoint_names()
    {
        Torch.Load();
        var config = ModelConfigs.Sd15;
        (string Component, string Diffusers, string Ldm)[] known =
        [
            ("unet", "conv_in.weight", "model.diffusion_model.input_blocks.0.0.weight"),
            ("unet", "time_embedding.linear_2.bias", "model.diffusion_model.time_embed.2.bias"),
            ("unet", "down_blocks.0.resnets.1.norm1.weight", "model.diffusion_model.input_blocks.2.0.in_layers.0.weight"),
            ("unet", "down_blocks.1.downsamplers.0.conv.weight", "model.diffusion_model.input_blocks.6.0.op.weight"),
            ("unet", "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_v.weight", "model.diffusion_model.input_blocks.8.1.transformer_blocks.0.attn2.to_v.weight"),
            ("unet", "down_blocks.3.resnets.1.conv2.weight", "model.diffusion_model.input_blocks.11.0.out_layers.3.weight"),
            ("unet", "mid_block.resnets.1.time_emb_proj.weight", "model.diffusion_model.middle_block.2.emb_layers.1.weight"),
            ("unet", "mid_block.attentions.0.proj_in.weight", "model.diffusion_model.middle_block.1.proj_in.weight"),
            ("unet", "up_blocks.0.resnets.2.conv_shortcut.weight", "model.diffusion_model.output_blocks.2.0.skip_connection.weight"),
            ("unet", "up_blocks.0.upsamplers.0.conv.weight", "model.diffusion_model.output_blocks.2.1.conv.weight"),
            ("unet", "up_blocks.1.upsamplers.0.conv.weight", "model.diffusion_model.output_blocks.5.2.conv.weight"),
            ("unet", "up_blocks.3.attentions.2.proj_out.weight", "model.diffusion_model.output_blocks.11.1.proj_out.weight"),
            ("unet", "conv_norm_out.bias", "model.diffusion_model.out.0.bias"),
            ("vae", "encoder.down_blocks.3.resnets.1.norm2.weight", "first_stage_model.encoder.down.3.block.1.norm2.weight"),
            ("vae", "encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight"),
            ("vae", "decoder.up_blocks.0.resnets.0.conv1.weight", "first_stage_model.decoder.up.3.block.0.conv1.weight"),
            ("vae", "decoder.up_blocks.2.upsamplers.0.conv.bias", "first_stage_model.decoder.up.1.upsample.conv.bias"),
            ("vae", "decoder.mid_block.attentions.0.to_out.0.weight", "first_stage_model.decoder.mid.attn_1.proj_out.weight"),
            ("vae", "encoder.mid_block.resnets.1.conv1.weight", "first_stage_model.encoder.mid.block_2.conv1.weight"),
            ("text_encoder", "text_model.encoder.layers.3.mlp.fc2.bias", "cond_stage_model.transformer.text_model.encoder.layers.3.mlp.fc2.bias"),
        ];
        foreach (var (component, diffusers, ldm) in known)
            Assert.Equal(ldm, LdmKeyMap.Map(component, diffusers, config).Key);

        // Every key of every component maps, and no two keys collide.
        using var unet = new UNet2DConditionModel(config.Unet, META);
        using var vae = new AutoencoderKL(config.Vae!, META);
        foreach (var (component, module) in new (string, TorchSharp.torch.nn.Module)[] { ("unet", unet), ("vae", vae) })
        {
            var keys = module.state_dict().Keys.ToList();
            Assert.Equal(keys.Count, keys.Select(k => LdmKeyMap.Map(component, k, config).Key).Distinct().Count());
        }
    }

    [Fact]
    public void Single_file_loading_ignores_other_prefixes_and_reports_unknown_component_keys()
    {
        using var dir = new TempDir();
        using var model = SmallModel(5);
        var path = dir.File("model.safetensors");
        ModelStore.SaveSingleFile(model, path);
        Dictionary<string, string> metadata;
        using (var file = SafeTensorsFile.Open(path)) metadata = file.Metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        var tensors = SafeTensors.Load(path);
        tensors["model_ema.decay"] = tensor(0.9999f);
        tensors["alphas_cumprod"] = ones(1000);
        var withExtras = dir.File("extras.safetensors");
        SafeTensors.Save(withExtras, tensors, metadata);
        using (ModelStore.LoadSingleFile(withExtras)) { }

        tensors["model.diffusion_model.input_blocks.99.0.weight"] = zeros(2);
        tensors.Remove("first_stage_model.quant_conv.bias");
        var broken = dir.File("broken.safetensors");
        SafeTensors.Save(broken, tensors, metadata);
        var error = Assert.Throws<WeightLoadException>(() => ModelStore.LoadSingleFile(broken));
        Assert.Contains("input_blocks.99.0.weight", error.Message);
        Assert.Contains(broken, error.Message);
    }
}
